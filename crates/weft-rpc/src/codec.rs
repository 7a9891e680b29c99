//! bincode 2 (serde, standard configuration) with a size cap, for typed requests.

use crate::{MAX_MESSAGE, RpcError};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Encodes `value`; refused when it exceeds [`MAX_MESSAGE`].
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, RpcError> {
    let bytes = bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| RpcError::Encode(e.to_string()))?;
    if bytes.len() > MAX_MESSAGE {
        return Err(RpcError::TooLarge { limit: MAX_MESSAGE });
    }
    Ok(bytes)
}

/// Decodes bytes from the network: never panics, allocates at most [`MAX_MESSAGE`], and
/// refuses trailing bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RpcError> {
    let config = bincode::config::standard().with_limit::<MAX_MESSAGE>();
    let (value, used) = bincode::serde::decode_from_slice(bytes, config)
        .map_err(|e| RpcError::Decode(e.to_string()))?;
    if used != bytes.len() {
        return Err(RpcError::Decode(format!(
            "{} trailing bytes",
            bytes.len() - used
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Msg {
        name: String,
        values: Vec<u32>,
    }

    #[test]
    fn round_trip_and_garbage() {
        let msg = Msg {
            name: "n".into(),
            values: vec![1, 2, 3],
        };
        let bytes = encode(&msg).unwrap();
        assert_eq!(decode::<Msg>(&bytes).unwrap(), msg);
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(decode::<Msg>(&trailing).is_err());
        // A huge announced length must not allocate or panic.
        assert!(decode::<Msg>(&[0xfc, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]).is_err());
        assert!(decode::<Msg>(&[]).is_err());
    }
}
