#![no_main]
//! Raw bytes as the body of a POST /validate: never a panic; an AdmissionReview
//! response for the request's uid, or a 400 (see src/lib.rs, check_validate).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let _ = llm_injector_fuzz::check_validate(body);
});
