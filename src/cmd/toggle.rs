//! `enable` / `disable`: the ingestion switch. Only the flag changes; the
//! configuration, the credentials and the cursors stay as they are.

use crate::{Context, Exit};

pub fn run(ctx: &Context, on: bool) -> anyhow::Result<Exit> {
    let was = ctx.store.update(&ctx.profile, |p| {
        let was = p.enabled;
        p.enabled = on;
        Ok(was)
    })?;
    let verb = if on { "enabled" } else { "disabled" };
    if ctx.verbosity >= 0 {
        if was == on {
            eprintln!("profile `{}` was already {verb}", ctx.profile);
        } else if on {
            eprintln!(
                "profile `{}` enabled: `defender-ingest{} pull` now fetches data",
                ctx.profile,
                profile_flag(&ctx.profile)
            );
        } else {
            eprintln!(
                "profile `{}` disabled: `pull` fetches nothing until `enable`; configuration, credentials and positions are kept",
                ctx.profile
            );
        }
    }
    Ok(Exit::Ok)
}

/// ` --profile NAME` when the profile is not the default, for printed commands.
pub(crate) fn profile_flag(profile: &str) -> String {
    if profile == "default" {
        String::new()
    } else {
        format!(" --profile {profile}")
    }
}
