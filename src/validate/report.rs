//! What validation returns: the rules, one broken rule ([`Violation`]), and
//! the errors and warnings about one object ([`Report`]).

use std::fmt;

/// Declares [`Rule`] with a stable id per variant and the list of all of them.
macro_rules! rules {
    ($($(#[doc = $doc:literal])+ $variant:ident = $id:literal,)+) => {
        /// Every validation rule. Its [`id`](Rule::id) is stable: a metric label,
        /// and the name of its row in the README's "Validation rules" table.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Rule {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl Rule {
            /// All rules, in the order of the README table.
            pub const ALL: &'static [Rule] = &[$(Rule::$variant,)+];

            /// The stable id, for example `too_many_devices`.
            pub fn id(self) -> &'static str {
                match self {
                    $(Rule::$variant => $id,)+
                }
            }
        }
    };
}

rules! {
    /// `spec.image` is a valid container image reference.
    ImageReference = "image_reference",
    /// `spec.image` names a tag other than `latest`, or a digest (warning).
    ImageUnpinned = "image_unpinned",
    /// An NVIDIA engine does not run a ROCm build.
    RocmImageOnNvidia = "rocm_image_on_nvidia",
    /// An AMD engine runs a ROCm build (warning).
    NonRocmImageOnAmd = "non_rocm_image_on_amd",
    /// `spec.port` is a TCP port.
    EnginePort = "engine_port",
    /// A CPU engine (vendor None) has no GPU settings.
    CpuEngineGpuSettings = "cpu_engine_gpu_settings",
    /// `maxDevicesPerInstance` is 1..64.
    MaxDevices = "max_devices",
    /// `memoryPerDevice` is an amount of memory.
    MemoryPerDevice = "memory_per_device",
    /// `resourceName` is an extended resource `domain/name`.
    ResourceName = "resource_name",
    /// `resourceName` is not another vendor's resource.
    ResourceNameVendor = "resource_name_vendor",
    /// `resourceName` only with DevicePlugin allocation.
    ResourceNameWithDra = "resource_name_with_dra",
    /// DRA allocation names a valid ResourceClaimTemplate.
    DraTemplate = "dra_template",
    /// `dra` only with DRA allocation.
    DraWithoutDra = "dra_without_dra",
    /// `runtimeClassName` is a valid object name.
    RuntimeClassName = "runtime_class_name",
    /// `env` does not set variables the injector sets.
    ReservedEngineEnv = "reserved_engine_env",
    /// `env` names each variable once.
    DuplicateEngineEnv = "duplicate_engine_env",
    /// `env` does not override the models' serving settings (warning).
    EngineEnvOverridesServing = "engine_env_overrides_serving",
    /// `resources` holds no GPUs or claims (the injector adds them).
    EngineResources = "engine_resources",
    /// `modelStore` has exactly one source, a valid claim name.
    ModelStore = "model_store",
    /// `spec.model` is an Ollama model reference.
    OllamaModel = "ollama_model",
    /// `spec.model` names a tag (warning).
    OllamaModelUnpinned = "ollama_model_unpinned",
    /// `engineRef.name` is a valid object name.
    EngineRefName = "engine_ref_name",
    /// `parallelism.data` is 1..64.
    DataParallelism = "data_parallelism",
    /// `parallelism.model` is 0..64.
    ModelParallelism = "model_parallelism",
    /// `devices` are distinct.
    DuplicateDevice = "duplicate_device",
    /// Each of `devices` is an index below the GPUs of one instance.
    BadDevice = "bad_device",
    /// `devices`, when set, lists every GPU of one instance (none left idle).
    DevicesLeaveGpusIdle = "devices_leave_gpus_idle",
    /// `clientEnv` entries are variables Kubernetes takes, each set once, none
    /// of the device-visibility ones.
    ClientEnv = "client_env",
    /// `clientEnv` values refer only to variables defined before them (warning).
    ClientEnvReference = "client_env_reference",
    /// `serving` numbers are in range.
    ServingRange = "serving_range",
    /// `serving.keepAlive` is a duration Ollama reads.
    KeepAlive = "keep_alive",
    /// `serving.keepAlive` is not 0 (warning).
    KeepAliveZero = "keep_alive_zero",
    /// No GPUs on a CPU engine.
    GpuOnCpuEngine = "gpu_on_cpu_engine",
    /// At least one GPU on a GPU engine.
    NoGpuOnGpuEngine = "no_gpu_on_gpu_engine",
    /// `parallelism.model` at most the engine's `maxDevicesPerInstance`.
    TooManyDevices = "too_many_devices",
    /// Instance ports `port .. port + data - 1` stay below 65536.
    PortOverflow = "port_overflow",
    /// `routing`: a TCP port, one affinity, a header name, a prefix length.
    Routing = "routing",
    /// `routing.expose.port` is none of the engine instances' and router's ports.
    ExposedPort = "exposed_port",
    /// The model's engine exists (warning when it does not yet).
    MissingEngine = "missing_engine",
    /// An engine that models use is not deleted.
    EngineInUse = "engine_in_use",
    /// An engine change does not break the models that use it.
    EngineChangeBreaksModel = "engine_change_breaks_model",
    /// A model that uses a changed engine did not fit it before either (warning).
    ModelDoesNotFit = "model_does_not_fit",
    /// With `memoryPerDevice`: at least one layer of the model fits a GPU of an instance.
    ModelExceedsGpuMemory = "model_exceeds_gpu_memory",
    /// With `memoryPerDevice`: the whole model fits the GPUs of an instance (warning).
    ModelOffloadsToCpu = "model_offloads_to_cpu",
    /// With `memoryPerDevice`: the facts of the estimate are known (warning).
    MemoryUnknown = "memory_unknown",
    /// `facts.weightsSize`, `parameters` and `quantization` are readable.
    ModelFacts = "model_facts",
    /// What runs on the CPU fits the engine container's memory limit (warning).
    EngineMemoryLimit = "engine_memory_limit",
}

/// One broken rule: the field it is about, and a message naming the value and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which rule.
    pub rule: Rule,
    /// The field path as `kubectl explain` spells it, such as
    /// `spec.parallelism.model` or `spec.devices[1]`.
    pub field: String,
    /// What is wrong: the bad value and the fix.
    pub message: String,
}

impl Violation {
    /// A violation of `rule` at `field`.
    pub fn new(rule: Rule, field: impl Into<String>, message: impl Into<String>) -> Self {
        Violation {
            rule,
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// What validating one object found: errors deny it; warnings are shown to
/// the user (admission warnings, `validate` output) and do not block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub errors: Vec<Violation>,
    pub warnings: Vec<Violation>,
}

impl Report {
    /// True when nothing denies the object.
    pub fn is_allowed(&self) -> bool {
        self.errors.is_empty()
    }

    /// Adds an error.
    pub fn error(&mut self, rule: Rule, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(Violation::new(rule, field, message));
    }

    /// Adds a warning.
    pub fn warn(&mut self, rule: Rule, field: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Violation::new(rule, field, message));
    }

    /// Appends the errors and warnings of `other`.
    pub fn extend(&mut self, other: Report) {
        self.errors.extend(other.errors);
        self.warnings.extend(other.warnings);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn violation_displays_field_then_message() {
        let v = Violation::new(Rule::EnginePort, "spec.port", "0 is not a TCP port");
        assert_eq!(v.to_string(), "spec.port: 0 is not a TCP port");
    }

    #[test]
    fn rule_ids_are_unique_snake_case() {
        let ids: HashSet<&str> = Rule::ALL.iter().map(|r| r.id()).collect();
        assert_eq!(ids.len(), Rule::ALL.len());
        for id in ids {
            assert!(
                id.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{id}"
            );
        }
    }

    #[test]
    fn report_allows_only_without_errors() {
        let mut report = Report::default();
        report.warn(Rule::ImageUnpinned, "spec.image", "w");
        assert!(report.is_allowed());
        let mut other = Report::default();
        other.error(Rule::EnginePort, "spec.port", "e");
        report.extend(other);
        assert!(!report.is_allowed());
        assert_eq!((report.errors.len(), report.warnings.len()), (1, 1));
    }
}
