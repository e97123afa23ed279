//! `status`: what a profile is connected to and where each endpoint stands.
//! Reads only; never prints a secret (it only asks the keyring whether one exists).

use serde_json::{Map, Value, json};

use crate::api::Endpoint;
use crate::cli::{Flow, StatusArgs};
use crate::secrets::{CLIENT_SECRET_ENV, Credentials};
use crate::state::Profile;
use crate::{Context, Exit};

pub fn run(ctx: &Context, args: &StatusArgs) -> anyhow::Result<Exit> {
    let profile = ctx.store.load_existing(&ctx.profile)?;
    let (authorized, note) = authorized(ctx, &profile);
    let report = report(&profile, authorized);
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        eprint!("{}", table(&profile, authorized, note.as_deref()));
    }
    Ok(Exit::Ok)
}

/// Whether the profile can sign in without a person: credentials in the keyring,
/// or a client secret in the environment for an app-only profile.
fn authorized(ctx: &Context, profile: &Profile) -> (bool, Option<String>) {
    if profile.connection.flow == Flow::ClientSecret
        && std::env::var_os(CLIENT_SECRET_ENV).is_some()
    {
        return (
            true,
            Some(format!("client secret from {CLIENT_SECRET_ENV}")),
        );
    }
    let Some(key) = &profile.credential_key else {
        return (false, None);
    };
    match Credentials::load(ctx.secrets.as_ref(), key) {
        Ok(Some(_)) => (true, None),
        Ok(None) => (false, Some("no credentials in the keyring".into())),
        Err(e) => (false, Some(e.to_string())),
    }
}

pub fn report(profile: &Profile, authorized: bool) -> Value {
    let mut endpoints = Map::new();
    for e in Endpoint::ALL {
        let st = profile.endpoint(e.name());
        endpoints.insert(
            e.name().to_string(),
            json!({
                "cursor": st.and_then(|s| s.cursor.clone()),
                "last_pull": st.and_then(|s| s.last_pull.clone()),
                "remembered": st.map(|s| s.seen.len()).unwrap_or(0),
            }),
        );
    }
    let c = &profile.connection;
    json!({
        "profile": profile.name,
        "tenant_id": c.tenant_id,
        "client_id": c.client_id,
        "cloud": c.cloud.name(),
        "flow": c.flow,
        "login_url": c.login_url,
        "api_url": c.api_url,
        "enabled": profile.enabled,
        "authorized": authorized,
        "authorized_at": profile.authorized_at,
        "endpoints": endpoints,
    })
}

fn table(profile: &Profile, authorized: bool, note: Option<&str>) -> String {
    let c = &profile.connection;
    let mut out = format!(
        "profile     {}\ntenant      {}\nclient id   {}\ncloud       {}\napi         {}\nenabled     {}\nauthorized  {}{}\n",
        profile.name,
        c.tenant_id,
        c.client_id,
        c.cloud.name(),
        c.api_url,
        if profile.enabled {
            "yes"
        } else {
            "no (run `enable`)"
        },
        if authorized {
            "yes"
        } else {
            "no (run `authorize`)"
        },
        note.map(|n| format!(" — {n}")).unwrap_or_default(),
    );
    out.push_str("\nendpoint          cursor                          last pull\n");
    for e in Endpoint::ALL {
        let st = profile.endpoint(e.name());
        out.push_str(&format!(
            "{:<17} {:<31} {}\n",
            e.name(),
            st.and_then(|s| s.cursor.as_deref()).unwrap_or("-"),
            st.and_then(|s| s.last_pull.as_deref()).unwrap_or("never"),
        ));
    }
    out
}
