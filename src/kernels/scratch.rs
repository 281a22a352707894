//! Reusable scratch buffers for the kernels.
//!
//! Every training step needs the same large temporaries (column matrices of
//! several MB). Allocating them fresh costs page faults and zeroing on every
//! batch; recycling them costs nothing after the first step.

use std::sync::Mutex;

/// Buffers returned by finished kernels, kept for the next step.
static POOL: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

/// At most this many buffers are kept (a step needs fewer than ten).
const MAX_KEPT: usize = 16;

/// A buffer of exactly `len` initialised values, preferably recycled. Its
/// content is unspecified: callers overwrite all of it.
pub fn take(len: usize) -> Vec<f32> {
    let recycled = {
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        // The smallest buffer that is large enough.
        let best = pool
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= len)
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i);
        best.map(|i| pool.swap_remove(i))
    };
    let mut buf = recycled.unwrap_or_default();
    if buf.len() >= len {
        // Already-initialised values: shrinking keeps them, no memset.
        buf.truncate(len);
    } else {
        buf.resize(len, 0.0);
    }
    buf
}

/// A buffer of `len` zeros, preferably recycled.
pub fn take_zeroed(len: usize) -> Vec<f32> {
    let mut buf = take(len);
    buf.fill(0.0);
    buf
}

/// Hands a buffer back for reuse.
pub fn give(mut buf: Vec<f32>) {
    if buf.capacity() == 0 {
        return;
    }
    // Keep the initialised length at its maximum so a later `take` of the
    // same size needs no fill.
    if buf.len() < buf.capacity() {
        let cap = buf.capacity();
        buf.resize(cap, 0.0);
    }
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if pool.len() < MAX_KEPT {
        pool.push(buf);
    } else if let Some(smallest) = pool.iter_mut().min_by_key(|b| b.capacity()) {
        if smallest.capacity() < buf.capacity() {
            *smallest = buf;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycled_buffers_have_the_asked_length() {
        let a = take(1000);
        assert_eq!(a.len(), 1000);
        give(a);
        let b = take(10);
        assert_eq!(b.len(), 10);
        let z = take_zeroed(2000);
        assert!(z.iter().all(|&v| v == 0.0));
        give(b);
        give(z);
    }
}
