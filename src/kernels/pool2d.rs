//! ReLU followed by max pooling, fused, channels-last.
//!
//! `pool(relu(y)) = relu(pool(y))`, so one pass over the convolution output
//! gives the pooled activations and, per output, the input position that
//! won (or none when the maximum is not positive, where ReLU stops the
//! gradient). Ties go to the first position in scan order, as PyTorch.

use rayon::prelude::*;

/// Marks an output whose maximum was not positive: no gradient flows.
pub const NO_GRAD: u32 = u32::MAX;

/// Geometry of a pooling window over NHWC data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolGeometry {
    /// Batch size.
    pub batch: usize,
    /// Input height and width.
    pub in_hw: [usize; 2],
    /// Channels.
    pub channels: usize,
    /// Window size (square).
    pub size: usize,
    /// Stride (square).
    pub stride: usize,
}

impl PoolGeometry {
    /// Output height and width (floor, no padding: PyTorch's default).
    pub fn out_hw(&self) -> [usize; 2] {
        let o = |i: usize| (self.in_hw[i] - self.size) / self.stride + 1;
        [o(0), o(1)]
    }

    /// Values in the output.
    pub fn out_len(&self) -> usize {
        let [oh, ow] = self.out_hw();
        self.batch * oh * ow * self.channels
    }

    /// Values in the input.
    pub fn in_len(&self) -> usize {
        self.batch * self.in_hw[0] * self.in_hw[1] * self.channels
    }
}

/// Forward: `relu(maxpool(y))` of NHWC `y`, with the winning input index
/// (within its item) per output, or [`NO_GRAD`]. A NaN wins its window and
/// stays NaN, as in PyTorch, so divergence is never hidden.
pub fn relu_max_pool(g: &PoolGeometry, y: &[f32], out: &mut [f32], arg: &mut [u32]) {
    let [h, w] = g.in_hw;
    let [oh, ow] = g.out_hw();
    let c = g.channels;
    // `assert!`, not `debug_assert!`: the one profile turns debug assertions
    // off (Cargo.toml), and the zipped chunks below would silently drop
    // whatever a mismatched buffer leaves over.
    assert!(
        y.len() == g.in_len() && out.len() == g.out_len() && arg.len() == g.out_len(),
        "relu_max_pool: buffers of {}, {} and {} values for {} in and {} out",
        y.len(),
        out.len(),
        arg.len(),
        g.in_len(),
        g.out_len()
    );
    out.par_chunks_mut(ow * c)
        .zip(arg.par_chunks_mut(ow * c))
        .enumerate()
        .for_each(|(task, (out_row, arg_row))| {
            let (b, oy) = (task / oh, task % oh);
            let mut nan = vec![false; c];
            for ox in 0..ow {
                let o = &mut out_row[ox * c..][..c];
                let a = &mut arg_row[ox * c..][..c];
                o.fill(f32::NEG_INFINITY);
                nan.fill(false);
                for ky in 0..g.size {
                    for kx in 0..g.size {
                        let local = ((oy * g.stride + ky) * w + ox * g.stride + kx) * c;
                        let v = &y[b * h * w * c + local..][..c];
                        // Branch-free selects over the channels, so the loop
                        // vectorises; strictly greater keeps the first maximum.
                        let idx = local as u32;
                        for (ch, (((o, a), v), n)) in o.iter_mut().zip(a.iter_mut()).zip(v).zip(nan.iter_mut()).enumerate() {
                            let better = *v > *o;
                            *o = if better { *v } else { *o };
                            *a = if better { idx + ch as u32 } else { *a };
                            *n |= v.is_nan();
                        }
                    }
                }
                for ((o, a), n) in o.iter_mut().zip(a.iter_mut()).zip(&nan) {
                    if *n {
                        // A NaN wins its window, as in PyTorch: divergence shows.
                        *o = f32::NAN;
                    } else if *o <= 0.0 {
                        *o = 0.0;
                        *a = NO_GRAD;
                    }
                }
            }
        });
}

/// Backward: scatters `dout` to the winning positions of a zeroed `dy`.
pub fn relu_max_pool_backward(g: &PoolGeometry, dout: &[f32], arg: &[u32], dy: &mut [f32]) {
    let [h, w] = g.in_hw;
    assert!(h * w * g.channels < NO_GRAD as usize, "item too large for u32 indices");
    let per_item_out = g.out_len() / g.batch.max(1);
    let per_item_in = h * w * g.channels;
    // Windows never cross items, so items are independent tasks.
    dy.par_chunks_mut(per_item_in).enumerate().for_each(|(b, item)| {
        item.fill(0.0);
        let range = b * per_item_out..(b + 1) * per_item_out;
        for (&d, &a) in dout[range.clone()].iter().zip(&arg[range]) {
            if a != NO_GRAD {
                // With stride < size windows overlap: accumulate.
                item[a as usize] += d;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "relu_max_pool: buffers of 32, 7 and 8 values for 32 in and 8 out")]
    fn an_output_buffer_of_the_wrong_size_is_refused() {
        let g = PoolGeometry { batch: 1, in_hw: [4, 4], channels: 2, size: 2, stride: 2 };
        relu_max_pool(&g, &[0.0; 32], &mut [0.0; 7], &mut [0; 8]);
    }

    #[test]
    fn pools_relus_and_routes_gradients() {
        // One item, 4x4, 2 channels (interleaved), 2x2 windows.
        let g = PoolGeometry { batch: 1, in_hw: [4, 4], channels: 2, size: 2, stride: 2 };
        let ch0: [f32; 16] = [1., 2., -1., -2., 3., 0., -3., -4., 5., 5., 0., 0., 1., 1., 0., 0.];
        let y: Vec<f32> = ch0.iter().flat_map(|&v| [v, -v]).collect();
        let mut out = vec![0.0; g.out_len()];
        let mut arg = vec![0u32; g.out_len()];
        relu_max_pool(&g, &y, &mut out, &mut arg);
        // channel 0: max(1,2,3,0)=3, max(-1,-2,-3,-4)->relu 0, 5 (first of a tie), 0 -> 0
        let c0: Vec<f32> = out.iter().step_by(2).copied().collect();
        assert_eq!(c0, vec![3., 0., 5., 0.]);
        let c1: Vec<f32> = out.iter().skip(1).step_by(2).copied().collect();
        assert_eq!(c1, vec![0., 4., 0., 0.]);
        // The tie 5, 5 goes to the first (row 2, column 0 -> index 8).
        assert_eq!(arg[4], 8 * 2);
        assert_eq!(arg[2], NO_GRAD); // all-negative window of channel 0
        let dout = vec![1.0; g.out_len()];
        let mut dy = vec![9.0; g.in_len()];
        relu_max_pool_backward(&g, &dout, &arg, &mut dy);
        assert_eq!(dy.iter().sum::<f32>(), 3.0); // three outputs had a positive max
        assert_eq!(dy[4 * 2], 1.0); // value 3 at (1, 0), channel 0
        assert_eq!(dy[7 * 2 + 1], 1.0); // value 4 at (1, 3), channel 1
        assert_eq!(dy[8 * 2], 1.0);
    }
}
