//! ARM client (being written).
