//! The live publishers, owned below both ingest (which feeds them) and the program (which
//! reads them), so neither has to know the other.
//!
//! `registry` holds each publisher's GOP cache, statistics, profile decision and the
//! broadcast of its tags; `transcoder` derives a publisher in the channel profile from one
//! that differs from it.

pub mod registry;
pub mod transcoder;

pub use registry::{Airing, ProfileReport, Publisher, PublisherFeed, Publishers, StreamHeaders};
