#![no_main]
//! A pod built from the fuzz bytes (the captured pod with fuzzer-chosen
//! annotation, namespace, containers, env, resources, ports, volumes and
//! claims), injected with the examples/catalog catalog: never a panic, the
//! patch applies and gives the injected pod, injecting again is a no-op, and
//! the pod wrapped in the captured review passes check_mutate.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = llm_injector_fuzz::check_inject(data);
});
