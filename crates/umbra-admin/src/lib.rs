//! Admin API placeholder while being written.
