//! Burn modules to named f32 tensors and back, for safetensors exports.
//!
//! Names are the module's field paths (`conv1.weight`, `fc2.bias`), without
//! the enum variants that wrap them (`Network::LeNet5`), so they read like a
//! PyTorch `state_dict`. `Linear` weights are stored as PyTorch stores them,
//! `[out, in]` (Burn keeps `[in, out]`), so `torch.nn.Linear` loads them as
//! they are; convolution weights already share PyTorch's `[out, in, kh, kw]`.
//! `BatchNorm`'s learned scale and shift, `gamma` and `beta` in Burn, are
//! PyTorch's `weight` and `bias`; its running statistics (Burn's
//! `RunningState`, visited like parameters) are exported and loaded as
//! `running_mean` and `running_var`, so a network with batch norm infers the
//! same after a round trip. (Files written before batch norm took PyTorch's
//! names, with `gamma`/`beta`, still load.) PyTorch's integer `num_batches_tracked` is not
//! written (the files are f32 only); `torch`'s `load_state_dict` fills it in
//! when it is absent.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;

use crate::error::{Error, Result};
use selmask_wire::artifact::{F32Tensor, TensorMap};

/// Path bookkeeping shared by the collector and the loader.
#[derive(Default)]
struct Path {
    /// `(name, container type)` of each level entered.
    levels: Vec<(String, String)>,
}

impl Path {
    fn enter(&mut self, name: &str, container: &str) {
        self.levels.push((name.to_string(), container.to_string()));
    }

    fn exit(&mut self) {
        self.levels.pop();
    }

    /// The dotted name of the current parameter; enum variants are skipped
    /// because they are a Rust detail, not part of the network's structure,
    /// and batch norm's `gamma`/`beta` take PyTorch's names.
    fn name(&self) -> String {
        self.dotted(true)
    }

    /// The name with Burn's batch-norm field names, as files written
    /// before the PyTorch names were introduced have them.
    fn burn_name(&self) -> String {
        self.dotted(false)
    }

    fn dotted(&self, pytorch: bool) -> String {
        let last = self.levels.len().saturating_sub(1);
        let parts: Vec<&str> = self
            .levels
            .iter()
            .enumerate()
            .filter(|(_, (_, container))| !container.starts_with("Enum:"))
            .map(|(i, (name, container))| match (name.as_str(), container.as_str()) {
                ("gamma", "Struct:BatchNorm") if pytorch && i == last => "weight",
                ("beta", "Struct:BatchNorm") if pytorch && i == last => "bias",
                (name, _) => name,
            })
            .collect();
        parts.join(".")
    }

    /// Whether the current parameter is the weight of a `Linear` layer.
    fn is_linear_weight(&self) -> bool {
        matches!(self.levels.last(), Some((n, c)) if n == "weight" && c == "Struct:Linear")
    }
}

/// Swaps the two axes of a row-major `[r, c]` matrix.
fn transpose(values: &[f32], [r, c]: [usize; 2]) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    for i in 0..r {
        for j in 0..c {
            out[j * r + i] = values[i * c + j];
        }
    }
    out
}

struct Collector {
    path: Path,
    out: TensorMap,
}

impl ModuleVisitor for Collector {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let tensor = param.val();
        let mut shape = tensor.dims().to_vec();
        let mut values: Vec<f32> = tensor.into_data().convert::<f32>().try_into_vec::<f32>().expect("f32 tensor data");
        if self.path.is_linear_weight() && D == 2 {
            values = transpose(&values, [shape[0], shape[1]]);
            shape.swap(0, 1);
        }
        self.out.insert(self.path.name(), F32Tensor { shape, values });
    }
}

/// The float parameters (and batch-norm running statistics) of `module` by
/// name (see the module docs).
pub fn module_tensors<M: Module>(module: &M) -> TensorMap {
    let mut c = Collector { path: Path::default(), out: TensorMap::new() };
    // `valid()` folds the latest running-statistics update into the value a
    // visitor reads (Burn keeps it aside until the next forward pass).
    module.valid().visit(&mut c);
    c.out
}

struct Loader<'a> {
    path: Path,
    tensors: &'a TensorMap,
    what: &'a str,
    used: usize,
    error: Option<Error>,
}

impl ModuleMapper for Loader<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.error.is_some() {
            return param;
        }
        let name = self.path.name();
        let linear = self.path.is_linear_weight() && D == 2;
        let what = self.what;
        let bad = |reason: String| Error::invalid(what, format!("tensor '{name}'"), reason);
        // Files exported before batch norm took PyTorch's names still load.
        let Some(t) = self.tensors.get(&name).or_else(|| self.tensors.get(&self.path.burn_name())) else {
            self.error = Some(bad("missing".into()));
            return param;
        };
        let expected = param.val().dims().to_vec();
        let mut stored = t.shape.clone();
        if linear && stored.len() == 2 {
            stored.swap(0, 1);
        }
        if stored != expected {
            let mut want = expected.clone();
            if linear {
                want.swap(0, 1);
            }
            self.error = Some(bad(format!("shape {:?}, the network needs {:?}", t.shape, want)));
            return param;
        }
        self.used += 1;
        let values = if linear { transpose(&t.values, [t.shape[0], t.shape[1]]) } else { t.values.clone() };
        param.map(|old| {
            let device = old.device();
            let new = Tensor::from_data(TensorData::new(values, expected.clone()), &device);
            // A trainable parameter stays trainable (loading onto an autodiff device).
            if old.is_require_grad() { new.require_grad() } else { new }
        })
    }
}

/// `module` with every float parameter replaced by the tensor of the same
/// name in `tensors` (`what` names the file for messages). Missing, extra
/// or misshapen tensors are errors.
pub fn load_module_tensors<M: Module>(module: M, tensors: &TensorMap, what: &str) -> Result<M> {
    let mut loader = Loader { path: Path::default(), tensors, what, used: 0, error: None };
    let module = module.map(&mut loader);
    if let Some(e) = loader.error {
        return Err(e);
    }
    if loader.used != tensors.len() {
        let known = module_tensors(&module);
        let extra: Vec<&String> = tensors.keys().filter(|k| !known.contains_key(*k)).collect();
        return Err(Error::invalid(what, "tensors", format!("the network has no {extra:?}")));
    }
    Ok(module)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{Network, NetworkConfig};

    #[test]
    fn lenet5_round_trips_with_pytorch_names_and_layout() {
        let device = Device::flex();
        let net = NetworkConfig::by_name("lenet5", [1, 28, 28], 10).unwrap().init(&device);
        let map = module_tensors(&net);
        let names: Vec<&str> = map.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["conv1.bias", "conv1.weight", "conv2.bias", "conv2.weight", "fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"]
        );
        assert_eq!(map["fc1.weight"].shape, [500, 800]);
        assert_eq!(map["conv2.weight"].shape, [50, 20, 5, 5]);

        let fresh = NetworkConfig::by_name("lenet5", [1, 28, 28], 10).unwrap().init(&device);
        let loaded = load_module_tensors(fresh, &map, "weights.safetensors").unwrap();
        assert_eq!(module_tensors(&loaded), map);
    }

    #[test]
    fn resnet20_round_trips_with_akamaster_names_and_batch_norm_statistics() {
        let device = Device::flex().autodiff();
        device.seed(3);
        let cfg = NetworkConfig::by_name("resnet20", [3, 32, 32], 10).unwrap();
        let net = cfg.init(&device);
        // A training-mode forward pass moves the running statistics away
        // from their initial 0 and 1.
        let x = Tensor::<4>::random([4, 3, 32, 32], burn::tensor::Distribution::Normal(0.5, 2.0), &device);
        let _ = net.forward(x.clone());
        let map = module_tensors(&net);
        for name in [
            "conv1.weight",
            "bn1.weight",
            "bn1.bias",
            "bn1.running_mean",
            "bn1.running_var",
            "layer1.0.conv1.weight",
            "layer1.0.bn1.weight",
            "layer3.2.bn2.running_var",
            "linear.weight",
            "linear.bias",
        ] {
            assert!(map.contains_key(name), "{name} not in {:?}", map.keys().collect::<Vec<_>>());
        }
        assert!(!map.keys().any(|k| k.contains("gamma") || k.contains("beta")));
        assert_eq!(map["linear.weight"].shape, [10, 64]);
        assert!(map["bn1.running_mean"].values.iter().any(|&v| v != 0.0), "running mean not updated");

        let plain = Device::flex();
        let loaded = load_module_tensors(cfg.init(&plain), &map, "weights.safetensors").unwrap();
        assert_eq!(module_tensors(&loaded), map);
        // Inference (running statistics) gives the same outputs.
        let x = x.inner();
        let a: Vec<f32> = net.valid().forward(x.clone()).into_data().try_to_vec::<f32>().unwrap();
        let b: Vec<f32> = loaded.forward(x).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn batch_norm_tensors_under_burns_old_names_still_load() {
        let device = Device::flex();
        let cfg = NetworkConfig::by_name("resnet20", [3, 8, 8], 10).unwrap();
        let map = module_tensors(&cfg.init(&device));
        let old: TensorMap = map
            .iter()
            .map(|(k, v)| {
                let bn = k.contains(".bn") || k.starts_with("bn");
                let k = if bn { k.replace(".weight", ".gamma").replace(".bias", ".beta") } else { k.clone() };
                (k, v.clone())
            })
            .collect();
        assert!(old.contains_key("layer2.1.bn2.gamma") && old.contains_key("bn1.beta"));
        let loaded = load_module_tensors(cfg.init(&device), &old, "old.safetensors").unwrap();
        assert_eq!(module_tensors(&loaded), map);
    }

    #[test]
    fn loading_onto_an_autodiff_device_keeps_parameters_trainable() {
        let device = Device::flex().autodiff();
        let cfg = NetworkConfig::by_name("mlp", [1, 4, 4], 3).unwrap();
        let map = module_tensors(&cfg.init(&device));
        let net = load_module_tensors(cfg.init(&device), &map, "w.safetensors").unwrap();
        let x = Tensor::<4>::ones([2, 1, 4, 4], &device);
        let grads = net.forward(x).sum().backward();
        let Network::Mlp(mlp) = &net else { unreachable!() };
        let n = burn::optim::GradientsParams::from_grads(grads, mlp).len();
        assert_eq!(n, 4, "weights and biases of both layers get gradients");
    }

    #[test]
    fn missing_extra_and_misshapen_tensors_are_named() {
        let device = Device::flex();
        let cfg = NetworkConfig::by_name("lenet5", [1, 28, 28], 10).unwrap();
        let map = module_tensors(&cfg.init(&device));

        let mut missing = map.clone();
        missing.remove("fc2.bias");
        let err = load_module_tensors(cfg.init(&device), &missing, "w.safetensors").unwrap_err().to_string();
        assert!(err.contains("fc2.bias") && err.contains("missing"), "{err}");

        let mut extra = map.clone();
        extra.insert("fc3.weight".into(), F32Tensor { shape: vec![1], values: vec![0.0] });
        let err = load_module_tensors(cfg.init(&device), &extra, "w.safetensors").unwrap_err().to_string();
        assert!(err.contains("fc3.weight"), "{err}");

        let mut wrong = map;
        wrong.insert("fc1.bias".into(), F32Tensor { shape: vec![3], values: vec![0.0; 3] });
        let err = load_module_tensors(cfg.init(&device), &wrong, "w.safetensors").unwrap_err().to_string();
        assert!(err.contains("fc1.bias") && err.contains("[3]") && err.contains("[500]"), "{err}");
    }
}
