//! Arbitrary bytes as an Ironclad answer: SCIM list pages (users and groups, mapped and paged),
//! single users and groups, userinfo, the three error shapes on every status, the token
//! response and `Retry-After`. See `ironclad_connector::fuzzing`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| ironclad_connector::fuzzing::parse_responses(body));
