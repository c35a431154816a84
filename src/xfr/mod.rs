//! Replication: what it takes for standard secondaries to carry our answers.
//! TSIG, the IXFR journal, NOTIFY to secondaries, and the transfer client a
//! secondary zone of ours refreshes with.

pub mod client;
pub mod journal;
pub mod notify;
pub mod secondary;
pub mod tsig;
pub mod watch;
