//! Integration tests: real HTTP (reqwest) against an in-process emulator on `127.0.0.1:0`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// Shared client and fixtures.
mod util;

// The e4k seed scenario: namespace, CA certificates, clients, topic spaces, group, bindings.
mod seed;
// Every example of both specs is replayed and its response shape compared.
mod examples;
// Rejections with their ARM error codes.
mod rejections;
// Long-running operations, hostnames, PATCH and DELETE.
mod lro;
// Paging with nextLink and $top.
mod paging;
// Seeded fault injection.
mod faults;
// The state file and shutdown.
mod persistence;
// Role assignments (Microsoft.Authorization) at namespace and topic-space scope.
mod role_assignments;
