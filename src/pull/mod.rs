//! `pull`: incremental JSONL ingestion, every record version written once.

pub mod sink;
