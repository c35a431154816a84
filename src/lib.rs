//! txtfailover: an authoritative DNS server that answers an Amazon WorkSpaces
//! connection string's TXT query with the connection identifier of the
//! highest-priority healthy Region. See ARCHITECTURE.md for the map.

pub mod admin;
pub mod cli;
pub mod config;
pub mod decide;
pub mod dns;
pub mod engine;
pub mod fdlimit;
pub mod health;
pub mod import;
pub mod logging;
pub mod loglimit;
pub mod metrics;
pub mod peer;
pub mod serial;
pub mod serve;
pub mod service;
pub mod snapshot;
pub mod state;
pub mod status;
pub mod webhook;
pub mod xfr;
pub mod zone;
