//! The frame decoder on arbitrary bytes: splitting a text frame into objects and decoding
//! each must never panic, whatever the input; an object that decodes re-encodes to JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtm::protocol::{decode_request, split_frame};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for object in split_frame(&text) {
        match decode_request(object) {
            // What the server accepted must be representable again.
            Ok(request) => drop(serde_json::to_string(&request.op)),
            // Every refusal can be turned into what the server sends back.
            Err(error) => drop(error.reply()),
        }
    }
});
