//! Media primitives shared by ingest, splicing and relaying: the FLV container,
//! codec header parsing (legacy FLV and Enhanced RTMP), the per-publisher GOP cache
//! that lets a new consumer start decoding at once, and per-publisher statistics.

pub mod codec;
pub mod flv;
pub mod gop;
pub mod parameter_sets;
pub mod stats;
pub mod switcher;

pub use flv::{FlvTag, TagKind};
