//! The embedded HTTP endpoint.
