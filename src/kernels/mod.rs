//! Fast CPU kernels plugged into Burn through its backend-extension
//! mechanism.
//!
//! The `flex` backend is the default here, and its convolution is slow on
//! the small images of this field (see [`conv2d`](mod@conv2d)). The
//! extension trait below routes two operations to our batched kernels on
//! `flex`, with hand-written backward passes under autodiff, and to Burn's
//! own operations on every other backend, so a GPU backend needs nothing
//! special:
//!
//! - [`conv2d`]: a channels-first convolution (drop-in for Burn's);
//! - [`conv_relu_pool`]: convolution → ReLU → max pooling, channels-last,
//!   the building block of LeNet5, in one pass.

pub mod conv2d;
pub mod pool2d;
pub mod scratch;
pub mod timing;

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, DispatchDevice, Flex, backend_extension};
use burn::tensor::activation::relu;
use burn::tensor::module::{conv2d as burn_conv2d, max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use burn::tensor::{Bytes, DType, Shape, Tensor};

use conv2d::{ConvGeometry, nchw_to_nhwc, nhwc_to_nchw, weight_to_ohwi};
use pool2d::PoolGeometry;
use timing::{Phase, timed};

/// Convolution settings our kernels take: zero padding, dilation 1, one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvSpec {
    /// Stride (rows, columns).
    pub stride: [usize; 2],
    /// Zero padding (rows, columns), on both sides.
    pub padding: [usize; 2],
}

/// Operations with a fast path on the flex backend.
#[backend_extension(Autodiff, Flex)]
pub trait SmallConvBackend: Backend {
    /// `x [B, Cin, H, W]`, `weight [Cout, Cin, KH, KW]`, `bias [Cout]` →
    /// `[B, Cout, OH, OW]`.
    fn small_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        spec: ConvSpec,
    ) -> FloatTensor<Self>;

    /// Channels-last `x [B, H, W, Cin]` → `relu(maxpool(conv(x)))`
    /// `[B, PH, PW, Cout]`, pooling windows `pool`×`pool` with stride `pool`.
    fn conv_relu_pool(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        spec: ConvSpec,
        pool: usize,
    ) -> FloatTensor<Self>;
}

/// A contiguous f32 copy (or the tensor itself when already contiguous).
fn contiguous_f32(t: &FlexTensor) -> FlexTensor {
    assert_eq!(t.dtype(), DType::F32, "selmask kernels run in f32");
    t.to_contiguous()
}

fn flex_tensor(values: Vec<f32>, shape: [usize; 4]) -> FlexTensor {
    FlexTensor::new(Bytes::from_elems(values), Layout::contiguous(Shape::from(shape.to_vec())), DType::F32)
}

fn flex_tensor_1d(values: Vec<f32>) -> FlexTensor {
    let n = values.len();
    FlexTensor::new(Bytes::from_elems(values), Layout::contiguous(Shape::from(vec![n])), DType::F32)
}

/// Geometry from an input shape given as `[B, H, W, C]` (channels-last) or
/// `[B, C, H, W]`.
fn geometry(x_shape: &Shape, w_shape: &Shape, spec: ConvSpec, channels_last: bool) -> ConvGeometry {
    let (batch, c_in, in_hw) = if channels_last {
        (x_shape[0], x_shape[3], [x_shape[1], x_shape[2]])
    } else {
        (x_shape[0], x_shape[1], [x_shape[2], x_shape[3]])
    };
    assert_eq!(c_in, w_shape[1], "conv input has {c_in} channels, the weight expects {}", w_shape[1]);
    ConvGeometry {
        batch,
        c_in,
        in_hw,
        c_out: w_shape[0],
        kernel: [w_shape[2], w_shape[3]],
        stride: spec.stride,
        padding: spec.padding,
    }
}

/// What a convolution's backward pass keeps.
#[derive(Clone)]
struct ConvState {
    geometry: ConvGeometry,
    /// The patch matrix (a scratch buffer, recycled after backward).
    patches: Arc<Vec<f32>>,
    /// The weight, reordered `[Cout, KH, KW, Cin]`.
    weight: Arc<Vec<f32>>,
}

impl std::fmt::Debug for ConvState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The patch matrix is large: show its size, not its values.
        f.debug_struct("ConvState")
            .field("geometry", &self.geometry)
            .field("patches", &self.patches.len())
            .finish()
    }
}

impl ConvState {
    /// Returns the patch matrix to the scratch pool when no one else holds it.
    fn recycle(self) {
        if let Ok(p) = Arc::try_unwrap(self.patches) {
            scratch::give(p);
        }
    }
}

/// A forward convolution on flex tensors: NHWC output `[N, Cout]` and state.
fn conv_forward(x_nhwc: &[f32], weight: &FlexTensor, bias: &FlexTensor, g: ConvGeometry) -> (Vec<f32>, ConvState) {
    let w_ohwi = timed(Phase::Layout, || weight_to_ohwi(&g, contiguous_f32(weight).storage()));
    let bias = contiguous_f32(bias);
    let (y, patches) = conv2d::forward(&g, x_nhwc, &w_ohwi, Some(bias.storage()));
    let state = ConvState {
        geometry: g,
        patches: Arc::new(patches),
        weight: Arc::new(w_ohwi),
    };
    (y, state)
}

/// Forward of [`SmallConvBackend::small_conv2d`] on flex.
fn small_conv2d_forward(x: &FlexTensor, weight: &FlexTensor, bias: &FlexTensor, spec: ConvSpec) -> (FlexTensor, ConvState) {
    let x = contiguous_f32(x);
    let g = geometry(x.layout().shape(), weight.layout().shape(), spec, false);
    let x_nhwc = nchw_to_nhwc(x.storage(), [g.batch, g.c_in, g.in_hw[0], g.in_hw[1]]);
    let (y, state) = conv_forward(&x_nhwc, weight, bias, g);
    let [oh, ow] = g.out_hw();
    let out_dims = [g.batch, g.c_out, oh, ow];
    let y_nchw = nhwc_to_nchw(&y, out_dims);
    scratch::give(y);
    (flex_tensor(y_nchw, out_dims), state)
}

/// What the fused block's backward pass keeps.
#[derive(Clone, Debug)]
struct BlockState {
    conv: ConvState,
    pool: PoolGeometry,
    argmax: Arc<Vec<u32>>,
}

/// Forward of [`SmallConvBackend::conv_relu_pool`] on flex.
fn conv_relu_pool_forward(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: &FlexTensor,
    spec: ConvSpec,
    pool: usize,
) -> (FlexTensor, BlockState) {
    let x = timed(Phase::Layout, || contiguous_f32(x));
    let g = geometry(x.layout().shape(), weight.layout().shape(), spec, true);
    let (y, conv) = conv_forward(x.storage(), weight, bias, g);
    let pg = PoolGeometry { batch: g.batch, in_hw: g.out_hw(), channels: g.c_out, size: pool, stride: pool };
    let mut out = vec![0.0f32; pg.out_len()];
    let mut argmax = vec![0u32; pg.out_len()];
    timed(Phase::PoolForward, || pool2d::relu_max_pool(&pg, &y, &mut out, &mut argmax));
    scratch::give(y);
    let [ph, pw] = pg.out_hw();
    let state = BlockState { conv, pool: pg, argmax: Arc::new(argmax) };
    (flex_tensor(out, [g.batch, ph, pw, g.c_out]), state)
}

impl SmallConvBackend for Flex {
    fn small_conv2d(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>, spec: ConvSpec) -> FloatTensor<Self> {
        let (y, state) = small_conv2d_forward(&x, &weight, &bias, spec);
        state.recycle();
        y
    }

    fn conv_relu_pool(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        spec: ConvSpec,
        pool: usize,
    ) -> FloatTensor<Self> {
        let (y, state) = conv_relu_pool_forward(&x, &weight, &bias, spec, pool);
        state.conv.recycle();
        y
    }
}

/// Registers the gradients of a convolution, given `dY` in NHWC.
fn register_conv_grads(
    grads: &mut Gradients,
    parents: [Option<NodeId>; 3],
    dy_nhwc: &[f32],
    state: ConvState,
    input_channels_last: bool,
) {
    let [node_x, node_w, node_b] = parents;
    let g = state.geometry;
    let out = conv2d::backward(&g, dy_nhwc, &state.patches, &state.weight, node_x.is_some());
    state.recycle();
    if let (Some(node), Some(dx)) = (node_x, out.x) {
        let [h, w] = g.in_hw;
        let dx = if input_channels_last {
            flex_tensor(dx, [g.batch, h, w, g.c_in])
        } else {
            flex_tensor(nhwc_to_nchw(&dx, [g.batch, g.c_in, h, w]), [g.batch, g.c_in, h, w])
        };
        grads.register::<Flex>(node, dx);
    }
    if let Some(node) = node_w {
        grads.register::<Flex>(node, flex_tensor(out.weight, [g.c_out, g.c_in, g.kernel[0], g.kernel[1]]));
    }
    if let Some(node) = node_b {
        grads.register::<Flex>(node, flex_tensor_1d(out.bias));
    }
}

#[derive(Debug)]
struct SmallConvBackward;

impl Backward<Flex, 3> for SmallConvBackward {
    type State = ConvState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = contiguous_f32(&grads.consume::<Flex>(&ops.node));
        let g = ops.state.geometry;
        let [oh, ow] = g.out_hw();
        let dy_nhwc = nchw_to_nhwc(dy.storage(), [g.batch, g.c_out, oh, ow]);
        register_conv_grads(grads, ops.parents.map(|p| p.map(|n| n.id)), &dy_nhwc, ops.state, false);
    }
}

#[derive(Debug)]
struct ConvReluPoolBackward;

impl Backward<Flex, 3> for ConvReluPoolBackward {
    type State = BlockState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dout = contiguous_f32(&grads.consume::<Flex>(&ops.node));
        let BlockState { conv, pool, argmax } = ops.state;
        let mut dy = scratch::take(pool.in_len());
        timed(Phase::PoolBackward, || pool2d::relu_max_pool_backward(&pool, dout.storage(), &argmax, &mut dy));
        register_conv_grads(grads, ops.parents.map(|p| p.map(|n| n.id)), &dy, conv, true);
        scratch::give(dy);
    }
}

impl<C: CheckpointStrategy> SmallConvBackend for Autodiff<Flex, C> {
    fn small_conv2d(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>, spec: ConvSpec) -> FloatTensor<Self> {
        let forward = || small_conv2d_forward(x.primitive(), weight.primitive(), bias.primitive(), spec);
        match SmallConvBackward.prepare::<C>([x.node(), weight.node(), bias.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (y, state) = forward();
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => {
                let (y, state) = forward();
                state.recycle();
                prep.finish(y)
            }
        }
    }

    fn conv_relu_pool(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        spec: ConvSpec,
        pool: usize,
    ) -> FloatTensor<Self> {
        let forward = || conv_relu_pool_forward(x.primitive(), weight.primitive(), bias.primitive(), spec, pool);
        match ConvReluPoolBackward.prepare::<C>([x.node(), weight.node(), bias.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (y, state) = forward();
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => {
                let (y, state) = forward();
                state.conv.recycle();
                prep.finish(y)
            }
        }
    }
}

/// Whether tensors on `device` run on the flex backend (with or without autodiff).
pub fn is_flex(device: &burn::tensor::Device) -> bool {
    matches!(device.clone().inner().as_dispatch(), DispatchDevice::Flex(_))
}

/// 2-D convolution (zero padding, dilation 1, one group): the batched
/// kernel on flex, Burn's convolution elsewhere.
///
/// # Shapes
/// - `x` `[B, Cin, H, W]`, `weight` `[Cout, Cin, KH, KW]`, `bias` `[Cout]`
/// - output `[B, Cout, OH, OW]`
pub fn conv2d(x: Tensor<4>, weight: Tensor<4>, bias: Tensor<1>, spec: ConvSpec) -> Tensor<4> {
    if is_flex(&x.device()) {
        Tensor::from_dispatch(<burn::backend::Dispatch as SmallConvBackend>::small_conv2d(
            x.into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch(),
            spec,
        ))
    } else {
        burn_conv2d(x, weight, Some(bias), ConvOptions::new(spec.stride, spec.padding, [1, 1], 1))
    }
}

/// Convolution → ReLU → max pooling (`pool`×`pool`, stride `pool`), on
/// channels-last tensors: fused on flex, composed from Burn's operations
/// elsewhere.
///
/// # Shapes
/// - `x` `[B, H, W, Cin]`, `weight` `[Cout, Cin, KH, KW]`, `bias` `[Cout]`
/// - output `[B, PH, PW, Cout]`
pub fn conv_relu_pool(x: Tensor<4>, weight: Tensor<4>, bias: Tensor<1>, spec: ConvSpec, pool: usize) -> Tensor<4> {
    if is_flex(&x.device()) {
        Tensor::from_dispatch(<burn::backend::Dispatch as SmallConvBackend>::conv_relu_pool(
            x.into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch(),
            spec,
            pool,
        ))
    } else {
        let x = x.permute([0, 3, 1, 2]); // [B, Cin, H, W]
        let y = burn_conv2d(x, weight, Some(bias), ConvOptions::new(spec.stride, spec.padding, [1, 1], 1));
        let y = max_pool2d(relu(y), MaxPoolOptions::new([pool, pool]));
        y.permute([0, 2, 3, 1]) // [B, PH, PW, Cout]
    }
}

/// The [`ConvSpec`] of a Burn [`Conv2d`](burn::nn::conv::Conv2d) module, if
/// our kernels handle it (symmetric explicit or no padding, dilation 1, one
/// group; with or without a bias).
pub fn spec_of(conv: &burn::nn::conv::Conv2d) -> Option<ConvSpec> {
    use burn::nn::PaddingConfig2d;
    let padding = match conv.padding {
        PaddingConfig2d::Valid => [0, 0],
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => [top, left],
        _ => return None,
    };
    (conv.dilation == [1, 1] && conv.groups == 1).then_some(ConvSpec { stride: conv.stride, padding })
}

/// Runs a Burn [`Conv2d`](burn::nn::conv::Conv2d) module through [`conv2d`]
/// when [`spec_of`] allows, else through Burn. A convolution without bias
/// gets a zero bias: adding it costs one pass over the output, far less than
/// the slow path it avoids (its gradient is computed but goes nowhere).
///
/// # Shapes
/// - `x` `[B, Cin, H, W]` → `[B, Cout, OH, OW]`
pub fn conv2d_module(conv: &burn::nn::conv::Conv2d, x: Tensor<4>) -> Tensor<4> {
    let Some(spec) = spec_of(conv) else {
        return conv.forward(x);
    };
    let bias = match &conv.bias {
        Some(bias) => bias.val(),
        None => Tensor::zeros([conv.weight.dims()[0]], &x.device()),
    };
    conv2d(x, conv.weight.val(), bias, spec)
}
