//! Named f32 tensors in the `safetensors` format (Hugging Face's crate).
//!
//! The exporter does not know the network: the caller (the main crate, with
//! Burn) flattens its parameters into name → (shape, values) and back. f32
//! only, because that is what the networks train in; the crate does the
//! header and offset bookkeeping and validates it on read.

use std::collections::BTreeMap;

use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};

/// One f32 tensor: its shape and row-major values.
#[derive(Debug, Clone, PartialEq)]
pub struct F32Tensor {
    /// The shape; the values' count is its product.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub values: Vec<f32>,
}

impl F32Tensor {
    /// A tensor, checking that `values` fills `shape`.
    pub fn new(shape: Vec<usize>, values: Vec<f32>) -> Result<Self> {
        let t = F32Tensor { shape, values };
        t.check("tensor")?;
        Ok(t)
    }

    fn check(&self, name: &str) -> Result<()> {
        let n = self.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if n != Some(self.values.len()) {
            return Err(Error::Safetensors {
                name: name.to_string(),
                reason: format!("shape {:?} does not hold {} values", self.shape, self.values.len()),
            });
        }
        Ok(())
    }
}

/// Tensors by name; sorted, so files are byte-for-byte reproducible.
pub type TensorMap = BTreeMap<String, F32Tensor>;

fn st_err(name: &str, reason: impl ToString) -> Error {
    Error::Safetensors {
        name: name.to_string(),
        reason: reason.to_string(),
    }
}

/// Serialises `tensors` (`name` is the file name, for messages).
pub fn to_safetensors_bytes(name: &str, tensors: &TensorMap) -> Result<Vec<u8>> {
    // The crate borrows byte slices: make the little-endian bytes first.
    let mut bytes = Vec::with_capacity(tensors.len());
    for (key, t) in tensors {
        t.check(&format!("{name}: tensor '{key}'"))?;
        let mut b = Vec::with_capacity(t.values.len() * 4);
        for v in &t.values {
            b.extend_from_slice(&v.to_le_bytes());
        }
        bytes.push((key, t, b));
    }
    let mut views = Vec::with_capacity(bytes.len());
    for (key, t, b) in &bytes {
        let view = safetensors::tensor::TensorView::new(Dtype::F32, t.shape.clone(), b)
            .map_err(|e| st_err(name, format!("tensor '{key}': {e}")))?;
        views.push((key.as_str(), view));
    }
    safetensors::serialize(views, None).map_err(|e| st_err(name, e))
}

/// Reads every tensor; all must be f32 with a consistent shape.
pub fn from_safetensors_bytes(name: &str, bytes: &[u8]) -> Result<TensorMap> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| st_err(name, e))?;
    let mut out = TensorMap::new();
    for (key, view) in st.iter() {
        if view.dtype() != Dtype::F32 {
            return Err(st_err(
                name,
                format!("tensor '{key}' has dtype {:?}, expected F32", view.dtype()),
            ));
        }
        let data = view.data();
        let n = view.shape().iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if n.and_then(|n| n.checked_mul(4)) != Some(data.len()) {
            return Err(st_err(
                name,
                format!("tensor '{key}' of shape {:?} has {} bytes", view.shape(), data.len()),
            ));
        }
        let values = data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.insert(
            key.to_string(),
            F32Tensor {
                shape: view.shape().to_vec(),
                values,
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> TensorMap {
        let mut m = TensorMap::new();
        m.insert(
            "conv1.weight".into(),
            F32Tensor::new(vec![2, 1, 3, 3], (0..18).map(|i| i as f32 * 0.5).collect()).unwrap(),
        );
        m.insert("fc.bias".into(), F32Tensor::new(vec![10], vec![-1.0; 10]).unwrap());
        m.insert("scalar".into(), F32Tensor::new(vec![], vec![3.0]).unwrap());
        m
    }

    #[test]
    fn round_trips() {
        let m = sample();
        let b = to_safetensors_bytes("w", &m).unwrap();
        assert_eq!(from_safetensors_bytes("w", &b).unwrap(), m);
        // Deterministic bytes for the same tensors.
        assert_eq!(to_safetensors_bytes("w", &m).unwrap(), b);
    }

    #[test]
    fn rejects_inconsistent_tensors_and_garbage() {
        let e = F32Tensor::new(vec![2, 2], vec![1.0; 3]).unwrap_err().to_string();
        assert_eq!(e, "tensor: malformed safetensors: shape [2, 2] does not hold 3 values");
        let e = from_safetensors_bytes("weights.safetensors", b"nonsense")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("weights.safetensors: malformed safetensors"), "{e}");
        let b = to_safetensors_bytes("w", &sample()).unwrap();
        let e = from_safetensors_bytes("w.safetensors", &b[..b.len() - 4]).unwrap_err().to_string();
        assert!(e.starts_with("w.safetensors: malformed safetensors:"), "{e}");
        // A tensor of another dtype is named with it.
        let bytes = [1u8, 2];
        let view = safetensors::tensor::TensorView::new(Dtype::U8, vec![2], &bytes).unwrap();
        let u8_file = safetensors::serialize([("counts", view)], None).unwrap();
        let e = from_safetensors_bytes("u.safetensors", &u8_file).unwrap_err().to_string();
        assert!(e.contains("tensor 'counts' has dtype U8, expected F32"), "{e}");
    }

    proptest! {
        #[test]
        fn random_and_mutated_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), pos in 0usize..400, byte in any::<u8>()) {
            let _ = from_safetensors_bytes("r", &bytes);
            let mut b = to_safetensors_bytes("w", &sample()).unwrap();
            let i = pos % b.len();
            b[i] = byte;
            let _ = from_safetensors_bytes("w", &b);
        }
    }
}
