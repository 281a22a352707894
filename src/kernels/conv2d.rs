//! Batched convolution on plain `f32` slices, channels-last.
//!
//! Burn's `flex` backend convolves image by image with many small GEMMs, so
//! on the small inputs of this field packing overhead dominates. Here the
//! whole batch is one GEMM per pass, in the layout that keeps every GEMM in
//! the fast, well-blocked case of the `gemm` crate (measured: 80–140
//! GFLOP/s on two cores against 20–35 for the channels-first layout):
//!
//! - `P [N, K]` ("im2row"): one row per output position (N = B·OH·OW), the
//!   patch in `(ky, kx, ci)` order (K = KH·KW·Cin), read from NHWC input;
//! - forward `Y [N, Cout] = P · Wᵀ` is the NHWC output;
//! - `dWᵀ [K, Cout] = Pᵀ · dY`, split over the batch between threads;
//! - `dP [N, K] = dY · W`, scattered back by "row2im".
//!
//! `W` is the weight reordered to `[Cout, KH, KW, Cin]`. Zero padding, any
//! stride, dilation 1, one group. Tested against a direct convolution.

use gemm::{Parallelism, gemm};
use rayon::prelude::*;

use super::scratch;
use super::timing::{Phase, timed};

/// Geometry of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Batch size.
    pub batch: usize,
    /// Input channels.
    pub c_in: usize,
    /// Input height and width.
    pub in_hw: [usize; 2],
    /// Output channels.
    pub c_out: usize,
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Stride (rows, columns).
    pub stride: [usize; 2],
    /// Zero padding (rows, columns), on both sides.
    pub padding: [usize; 2],
}

impl ConvGeometry {
    /// Output height and width.
    pub fn out_hw(&self) -> [usize; 2] {
        let o = |i: usize| (self.in_hw[i] + 2 * self.padding[i] - self.kernel[i]) / self.stride[i] + 1;
        [o(0), o(1)]
    }

    /// Output positions per item.
    pub fn out_plane(&self) -> usize {
        let [oh, ow] = self.out_hw();
        oh * ow
    }

    /// Patch length K = KH·KW·Cin.
    pub fn patch_len(&self) -> usize {
        self.c_in * self.kernel[0] * self.kernel[1]
    }

    /// Output positions in the batch, N = B·OH·OW.
    pub fn rows(&self) -> usize {
        self.batch * self.out_plane()
    }

    /// Values in the input.
    pub fn input_len(&self) -> usize {
        self.batch * self.c_in * self.in_hw[0] * self.in_hw[1]
    }
}

/// Threads to split work over (rayon's pool).
fn threads() -> usize {
    rayon::current_num_threads().max(1)
}

/// `dst[m×n] = lhs · rhs` through `gemm`, strides in elements
/// (`*_rs` between rows, `*_cs` between columns).
///
/// # Safety
/// Every index `i·rs + j·cs` of each operand must be inside its slice.
#[allow(clippy::too_many_arguments)]
unsafe fn matmul(
    [m, n, k]: [usize; 3],
    dst: &mut [f32],
    [dst_rs, dst_cs]: [usize; 2],
    lhs: &[f32],
    [lhs_rs, lhs_cs]: [usize; 2],
    rhs: &[f32],
    [rhs_rs, rhs_cs]: [usize; 2],
    par: Parallelism,
) {
    // The safety condition itself, checked: O(1) next to the GEMM, and a
    // plain `assert!` because the one profile turns debug assertions off
    // (Cargo.toml), so a `debug_assert!` here would never run, not even in
    // the tests.
    let last = |rows: usize, cols: usize, [rs, cs]: [usize; 2]| {
        (rows > 0 && cols > 0).then(|| (rows - 1).checked_mul(rs).zip((cols - 1).checked_mul(cs)).and_then(|(a, b)| a.checked_add(b)))
    };
    for (what, extent, len) in [
        ("dst", last(m, n, [dst_rs, dst_cs]), dst.len()),
        ("lhs", last(m, k, [lhs_rs, lhs_cs]), lhs.len()),
        ("rhs", last(k, n, [rhs_rs, rhs_cs]), rhs.len()),
    ] {
        if let Some(extent) = extent {
            assert!(extent.is_some_and(|e| e < len), "matmul {m}x{n}x{k}: {what} of {len} values is too short for its strides");
        }
    }
    // SAFETY: every operand's last index is inside its slice (checked above).
    unsafe {
        gemm(
            m, n, k,
            dst.as_mut_ptr(), dst_cs as isize, dst_rs as isize, false,
            lhs.as_ptr(), lhs_cs as isize, lhs_rs as isize,
            rhs.as_ptr(), rhs_cs as isize, rhs_rs as isize,
            0.0, 1.0, false, false, false, par,
        );
    }
}

/// Builds `P [N, K]` from NHWC input `x [B, H, W, Cin]`.
pub fn im2row(g: &ConvGeometry, x: &[f32], p: &mut [f32]) {
    let [h, w] = g.in_hw;
    let [oh, ow] = g.out_hw();
    let [kh, kw] = g.kernel;
    let [sh, sw] = g.stride;
    let [ph, pw] = g.padding;
    let c = g.c_in;
    let k = g.patch_len();
    let span = kw * c;
    assert_eq!(p.len(), g.rows() * k, "im2row: the patch matrix must be rows x patch length");
    // One output row (oy) of one item per task: ow·K contiguous values.
    p.par_chunks_mut(ow * k).enumerate().for_each(|(task, out)| {
        let (b, oy) = (task / oh, task % oh);
        let item = &x[b * h * w * c..][..h * w * c];
        for ox in 0..ow {
            let row = &mut out[ox * k..][..k];
            let x0 = (ox * sw) as isize - pw as isize;
            let inside_x = x0 >= 0 && x0 as usize + kw <= w;
            for ky in 0..kh {
                let dst = &mut row[ky * span..][..span];
                let iy = (oy * sh + ky) as isize - ph as isize;
                if iy < 0 || iy as usize >= h {
                    dst.fill(0.0);
                } else if inside_x {
                    // The common case: KW·Cin contiguous input values.
                    let start = (iy as usize * w + x0 as usize) * c;
                    dst.copy_from_slice(&item[start..start + span]);
                } else {
                    for kx in 0..kw {
                        let ix = x0 + kx as isize;
                        let d = &mut dst[kx * c..][..c];
                        if ix < 0 || ix as usize >= w {
                            d.fill(0.0);
                        } else {
                            let start = (iy as usize * w + ix as usize) * c;
                            d.copy_from_slice(&item[start..start + c]);
                        }
                    }
                }
            }
        }
    });
}

/// Accumulates `dP [N, K]` into NHWC `dx [B, H, W, Cin]` (overwritten).
pub fn row2im(g: &ConvGeometry, dp: &[f32], dx: &mut [f32]) {
    let [h, w] = g.in_hw;
    let [oh, ow] = g.out_hw();
    let [kh, kw] = g.kernel;
    let [sh, sw] = g.stride;
    let [ph, pw] = g.padding;
    let c = g.c_in;
    let k = g.patch_len();
    let span = kw * c;
    // Items own disjoint parts of dx: one task per item, no locking.
    dx.par_chunks_mut(h * w * c).enumerate().for_each(|(b, item)| {
        item.fill(0.0);
        for oy in 0..oh {
            for ky in 0..kh {
                let iy = (oy * sh + ky) as isize - ph as isize;
                if iy < 0 || iy as usize >= h {
                    continue;
                }
                for ox in 0..ow {
                    let src = &dp[((b * oh + oy) * ow + ox) * k + ky * span..][..span];
                    let x0 = (ox * sw) as isize - pw as isize;
                    if x0 >= 0 && x0 as usize + kw <= w {
                        let start = (iy as usize * w + x0 as usize) * c;
                        for (d, s) in item[start..start + span].iter_mut().zip(src) {
                            *d += *s;
                        }
                    } else {
                        for kx in 0..kw {
                            let ix = x0 + kx as isize;
                            if ix < 0 || ix as usize >= w {
                                continue;
                            }
                            let start = (iy as usize * w + ix as usize) * c;
                            for (d, s) in item[start..start + c].iter_mut().zip(&src[kx * c..][..c]) {
                                *d += *s;
                            }
                        }
                    }
                }
            }
        }
    });
}

/// Reorders an OIHW weight `[Cout, Cin, KH, KW]` to `[Cout, KH, KW, Cin]`.
pub fn weight_to_ohwi(g: &ConvGeometry, w: &[f32]) -> Vec<f32> {
    let [kh, kw] = g.kernel;
    let c = g.c_in;
    let mut out = vec![0.0f32; g.c_out * g.patch_len()];
    for co in 0..g.c_out {
        for ci in 0..c {
            for ky in 0..kh {
                for kx in 0..kw {
                    out[((co * kh + ky) * kw + kx) * c + ci] = w[((co * c + ci) * kh + ky) * kw + kx];
                }
            }
        }
    }
    out
}

/// The forward pass: `Y [N, Cout]` (NHWC output, bias added) and the patch
/// matrix `P`, kept for the weight gradient. Both are scratch buffers:
/// hand them back with [`scratch::give`] when done.
pub fn forward(g: &ConvGeometry, x_nhwc: &[f32], w_ohwi: &[f32], bias: Option<&[f32]>) -> (Vec<f32>, Vec<f32>) {
    let (n, k, co) = (g.rows(), g.patch_len(), g.c_out);
    let mut p = scratch::take(n * k);
    timed(Phase::Im2row, || im2row(g, x_nhwc, &mut p));
    let mut y = scratch::take(n * co);
    // SAFETY: P is [n, k] row-major, W [co, k] read transposed, Y [n, co].
    timed(Phase::ConvGemm, || unsafe {
        matmul([n, co, k], &mut y, [co, 1], &p, [k, 1], w_ohwi, [1, k], Parallelism::Rayon(threads()));
    });
    if let Some(bias) = bias {
        y.par_chunks_mut(co * 64).for_each(|rows| {
            for row in rows.chunks_mut(co) {
                for (v, b) in row.iter_mut().zip(bias) {
                    *v += *b;
                }
            }
        });
    }
    (y, p)
}

/// Gradients of one convolution.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvGrads {
    /// NHWC `[B, H, W, Cin]`, when asked for.
    pub x: Option<Vec<f32>>,
    /// OIHW `[Cout, Cin, KH, KW]`.
    pub weight: Vec<f32>,
    /// `[Cout]`.
    pub bias: Vec<f32>,
}

/// The backward pass from `dY [N, Cout]`, the forward's `P` and the OHWI
/// weight.
pub fn backward(g: &ConvGeometry, dy: &[f32], p: &[f32], w_ohwi: &[f32], need_x: bool) -> ConvGrads {
    let (n, k, co) = (g.rows(), g.patch_len(), g.c_out);
    let [kh, kw] = g.kernel;
    let c = g.c_in;

    // dWᵀ [K, Cout] = Pᵀ · dY, the N rows split between threads by whole
    // items (a GEMM with a long inner dimension does not parallelise well).
    let chunks = threads().min(g.batch).max(1);
    let per = g.batch.div_ceil(chunks) * g.out_plane();
    let (dwt, bias) = timed(Phase::WeightGradGemm, || (0..chunks)
        .into_par_iter()
        .map(|t| {
            let (start, end) = ((t * per).min(n), ((t + 1) * per).min(n));
            let mut dwt = vec![0.0f32; k * co];
            let mut db = vec![0.0f32; co];
            if end > start {
                // SAFETY: rows start..end of P ([n, k]) and dY ([n, co]).
                unsafe {
                    matmul(
                        [k, co, end - start], &mut dwt, [co, 1],
                        &p[start * k..end * k], [1, k],
                        &dy[start * co..end * co], [co, 1],
                        Parallelism::None,
                    );
                }
                for row in dy[start * co..end * co].chunks(co) {
                    for (a, b) in db.iter_mut().zip(row) {
                        *a += *b;
                    }
                }
            }
            (dwt, db)
        })
        .reduce_with(|(mut a, mut da), (b, db)| {
            a.iter_mut().zip(&b).for_each(|(x, y)| *x += *y);
            da.iter_mut().zip(&db).for_each(|(x, y)| *x += *y);
            (a, da)
        })
        .expect("at least one chunk"));
    // [K (ky, kx, ci), Cout] → OIHW.
    let mut weight = vec![0.0f32; co * k];
    for o in 0..co {
        for ci in 0..c {
            for ky in 0..kh {
                for kx in 0..kw {
                    weight[((o * c + ci) * kh + ky) * kw + kx] = dwt[(((ky * kw) + kx) * c + ci) * co + o];
                }
            }
        }
    }

    let x = need_x.then(|| {
        let mut dp = scratch::take(n * k);
        // SAFETY: dY [n, co], W [co, k], dP [n, k], all row-major.
        timed(Phase::PatchGradGemm, || unsafe {
            matmul([n, k, co], &mut dp, [k, 1], dy, [co, 1], w_ohwi, [k, 1], Parallelism::Rayon(threads()));
        });
        let mut dx = vec![0.0f32; g.input_len()];
        timed(Phase::Row2im, || row2im(g, &dp, &mut dx));
        scratch::give(dp);
        dx
    });
    ConvGrads { x, weight, bias }
}

/// NCHW `[B, C, H, W]` → NHWC `[B, H, W, C]`.
pub fn nchw_to_nhwc(x: &[f32], [b, c, h, w]: [usize; 4]) -> Vec<f32> {
    let plane = h * w;
    let mut out = vec![0.0f32; x.len()];
    out.par_chunks_mut(plane * c).enumerate().take(b).for_each(|(bi, item)| {
        let src = &x[bi * c * plane..][..c * plane];
        for ci in 0..c {
            for (s, pix) in src[ci * plane..][..plane].iter().zip(0..) {
                item[pix * c + ci] = *s;
            }
        }
    });
    out
}

/// NHWC `[B, H, W, C]` → NCHW `[B, C, H, W]`.
pub fn nhwc_to_nchw(x: &[f32], [b, c, h, w]: [usize; 4]) -> Vec<f32> {
    let plane = h * w;
    let mut out = vec![0.0f32; x.len()];
    out.par_chunks_mut(plane * c).enumerate().take(b).for_each(|(bi, item)| {
        let src = &x[bi * c * plane..][..c * plane];
        for ci in 0..c {
            for (d, pix) in item[ci * plane..][..plane].iter_mut().zip(0..) {
                *d = src[pix * c + ci];
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct NCHW convolution, the definition.
    pub(crate) fn direct(g: &ConvGeometry, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
        let [h, wd] = g.in_hw;
        let [oh, ow] = g.out_hw();
        let [kh, kw] = g.kernel;
        let mut y = vec![0.0; g.batch * g.c_out * oh * ow];
        for bi in 0..g.batch {
            for co in 0..g.c_out {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut acc = b[co];
                        for ci in 0..g.c_in {
                            for ky in 0..kh {
                                for kx in 0..kw {
                                    let iy = (oy * g.stride[0] + ky) as isize - g.padding[0] as isize;
                                    let ix = (ox * g.stride[1] + kx) as isize - g.padding[1] as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                        continue;
                                    }
                                    acc += x[((bi * g.c_in + ci) * h + iy as usize) * wd + ix as usize]
                                        * w[((co * g.c_in + ci) * kh + ky) * kw + kx];
                                }
                            }
                        }
                        y[((bi * g.c_out + co) * oh + oy) * ow + ox] = acc;
                    }
                }
            }
        }
        y
    }

    pub(crate) fn values(n: usize, seed: u32) -> Vec<f32> {
        // A small deterministic pseudo-random sequence in [-1, 1).
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2000) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    fn geometries() -> Vec<ConvGeometry> {
        let g = |batch, c_in, in_hw, c_out, kernel, stride, padding| ConvGeometry {
            batch, c_in, in_hw, c_out, kernel, stride, padding,
        };
        vec![
            g(3, 1, [8, 8], 4, [5, 5], [1, 1], [0, 0]),
            g(2, 3, [7, 6], 5, [3, 3], [1, 1], [1, 1]),
            g(2, 2, [9, 9], 3, [3, 3], [2, 2], [1, 1]),
            g(1, 2, [5, 7], 2, [1, 1], [2, 1], [0, 0]),
            g(2, 1, [4, 4], 2, [3, 3], [2, 2], [2, 2]),
        ]
    }

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "index {i}: {x} vs {y}");
        }
    }

    fn dims(g: &ConvGeometry) -> [usize; 4] {
        [g.batch, g.c_in, g.in_hw[0], g.in_hw[1]]
    }

    fn out_dims(g: &ConvGeometry) -> [usize; 4] {
        let [oh, ow] = g.out_hw();
        [g.batch, g.c_out, oh, ow]
    }

    #[test]
    #[should_panic(expected = "matmul 48x4x25: rhs of 99 values is too short for its strides")]
    fn a_weight_too_short_for_the_geometry_stops_before_the_gemm() {
        let g = geometries()[0];
        let x = values(g.input_len(), 1);
        let w = values(g.c_out * g.patch_len() - 1, 2);
        let _ = forward(&g, &nchw_to_nhwc(&x, dims(&g)), &w, None);
    }

    #[test]
    #[should_panic(expected = "im2row: the patch matrix must be rows x patch length")]
    fn a_patch_buffer_of_the_wrong_size_is_refused() {
        let g = geometries()[1];
        let x = values(g.input_len(), 1);
        im2row(&g, &nchw_to_nhwc(&x, dims(&g)), &mut vec![0.0; 3]);
    }

    #[test]
    fn layout_conversions_invert_each_other() {
        let x = values(2 * 3 * 4 * 5, 9);
        let nhwc = nchw_to_nhwc(&x, [2, 3, 4, 5]);
        assert_eq!(nhwc[1], x[20]); // item 0, pixel 0, channel 1
        assert_eq!(nhwc_to_nchw(&nhwc, [2, 3, 4, 5]), x);
    }

    #[test]
    fn forward_matches_direct_convolution() {
        for g in geometries() {
            let x = values(g.input_len(), 1);
            let w = values(g.c_out * g.patch_len(), 2);
            let b = values(g.c_out, 3);
            let (y, p) = forward(&g, &nchw_to_nhwc(&x, dims(&g)), &weight_to_ohwi(&g, &w), Some(&b));
            close(&nhwc_to_nchw(&y, out_dims(&g)), &direct(&g, &x, &w, &b));
            scratch::give(p);
        }
    }

    #[test]
    fn backward_matches_the_adjoint_of_forward() {
        // The convolution is linear in x and in w, so the gradients must
        // satisfy <dy, conv(u, w)> = <grad_x, u> and <dy, conv(x, v)> = <grad_w, v>.
        for g in geometries() {
            let x = values(g.input_len(), 4);
            let w = values(g.c_out * g.patch_len(), 5);
            let zero_b = vec![0.0; g.c_out];
            let w_ohwi = weight_to_ohwi(&g, &w);
            let (_, p) = forward(&g, &nchw_to_nhwc(&x, dims(&g)), &w_ohwi, None);
            let dy = values(g.rows() * g.c_out, 6); // NHWC
            let grads = backward(&g, &dy, &p, &w_ohwi, true);
            let dy_nchw = nhwc_to_nchw(&dy, out_dims(&g));
            let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(a, b)| (a * b) as f64).sum::<f64>();
            let u = values(x.len(), 7);
            let lhs = dot(&dy_nchw, &direct(&g, &u, &w, &zero_b));
            let gx = nhwc_to_nchw(grads.x.as_ref().unwrap(), dims(&g));
            assert!((lhs - dot(&gx, &u)).abs() < 1e-3 * (1.0 + lhs.abs()), "{g:?}");
            let v = values(w.len(), 8);
            let lhs = dot(&dy_nchw, &direct(&g, &x, &v, &zero_b));
            assert!((lhs - dot(&grads.weight, &v)).abs() < 1e-3 * (1.0 + lhs.abs()), "{g:?}");
            for co in 0..g.c_out {
                let s: f32 = dy.chunks(g.c_out).map(|r| r[co]).sum();
                assert!((grads.bias[co] - s).abs() < 1e-3 * (1.0 + s.abs()));
            }
            scratch::give(p);
        }
    }
}
