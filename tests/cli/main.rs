//! Integration tests: the real `strata` binary against layouts made by strata's own fixtures
//! and by the peers (umoci, skopeo). One binary, a module per concern.

mod util;

mod artifacts;
mod artifacts_view;
mod attack_registry;
mod attack_sources;
mod attack_transfer;
mod attack_world;
mod bad_input;
mod basics;
mod build;
mod completion_layers;
mod concurrency;
mod crash;
mod crash_matrix;
mod exit_status;
mod fuzz_corpus;
mod gc;
mod hostile_apply;
mod hostile_layout;
mod hostile_sources;
mod hostile_transfer;
mod image_ops;
mod interop;
mod json_schemas;
mod layout_create;
mod man;
mod reference_grammar;
mod repack;
mod spec_rules;
mod surface;
mod surface_gaps;
mod transfer;
mod unpack;
mod unpack_diff;
mod world_archives;
mod world_layers;
