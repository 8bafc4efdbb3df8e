//! The cases, by area. Each section prints a heading, then one line per call.

pub mod descriptors;
pub mod files;
pub mod lifecycle;
pub mod names;
pub mod options;
pub mod polling;
pub mod transfer;

use crate::transcript::Transcript;

/// Every section that uses only names whose signature is the same in V1 and
/// V2 (or that exist only as `_v2`).
pub fn shared(t: &mut Transcript) {
    lifecycle::open_every_family_and_type(t);
    lifecycle::bind_addresses(t);
    lifecycle::listen_backlogs(t);
    lifecycle::connect_and_accept(t);
    lifecycle::addresses_v2(t);
    transfer::stream_transfer(t);
    transfer::datagrams(t);
    options::socket_options(t);
    polling::polling(t);
    names::addresses_by_name(t);
    descriptors::descriptor_functions(t);
}
