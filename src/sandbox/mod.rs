//! The sandbox tenant: a local Entra ID + Defender for Endpoint API.
