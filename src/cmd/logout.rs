//! `logout`: remove a profile's credentials from the keyring. The profile's
//! configuration and cursors stay, so `authorize` picks up where it was.

use crate::{Context, Exit};

pub fn run(ctx: &Context) -> anyhow::Result<Exit> {
    let profile = ctx.store.load_existing(&ctx.profile)?;
    if let Some(key) = &profile.credential_key {
        // Delete first: a failure leaves the state pointing at what is still there.
        ctx.secrets.delete(key)?;
        ctx.store.update(&ctx.profile, |p| {
            p.credential_key = None;
            Ok(())
        })?;
    }
    if ctx.verbosity >= 0 {
        eprintln!(
            "removed the credentials of profile `{}`; run `authorize` to connect it again",
            ctx.profile
        );
    }
    Ok(Exit::Ok)
}
