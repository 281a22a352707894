//! The transfer path: the wire codec, the storage server, the client and
//! the bandwidth model.
//!
//! The server holds datasets in memory and artifacts read with
//! [`crate::export::read_artifact`]; per request it packs only the selected
//! values ([`codec`]); the client ([`client`]) fetches a split in batches,
//! counts the bytes that crossed the wire and hands dense inputs back to the
//! caller, who runs the network. Nothing here depends on Burn: the one piece
//! that needs a network on the server side (dynamic masks) is the
//! [`server::DynamicMasker`] trait, which the main crate implements.

pub mod api;
pub mod bench;
pub mod bandwidth;
pub mod client;
pub mod codec;
pub mod fixtures;
pub mod server;
pub mod store;

/// Longest id or name accepted.
pub const MAX_NAME_LEN: usize = 128;

/// Whether `s` is a plain name usable as an artifact id, split, dataset or
/// artifact file name: 1 to [`MAX_NAME_LEN`] ASCII letters, digits, `.`, `_`,
/// `-`, starting with a letter or digit (so never `.`, `..` or a hidden
/// file) and with no `..` anywhere. Anything path-like (`/`, `\`, `%`, NUL,
/// spaces) is refused, so a name can never leave the directory or the URL
/// segment it is used in.
pub fn is_plain_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_NAME_LEN
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
        && !s.contains("..")
}

#[cfg(test)]
mod tests {
    use super::is_plain_name;

    #[test]
    fn plain_names() {
        for ok in ["mnist", "mnist-static_q0.05", "a", "F-MNIST.v2", "weights.safetensors"] {
            assert!(is_plain_name(ok), "{ok}");
        }
        let long = "a".repeat(129);
        for bad in [
            "", ".", "..", "../x", "a/b", "a\\b", ".hidden", "a..b", "a b", "a%2Fb", "a\0", "é", &long,
        ] {
            assert!(!is_plain_name(bad), "{bad:?}");
        }
    }
}
