//! One module per command family; each turns its clap arguments into library calls.

pub(crate) mod bridge;
pub(crate) mod certs;
pub(crate) mod demo;
pub(crate) mod eventgrid;
pub(crate) mod k8s;
pub(crate) mod up;
