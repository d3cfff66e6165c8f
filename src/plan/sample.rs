//! Hand-built sample plans for the unit tests of plan and render; the builders live in
//! tests/support/sample_plan.rs so the integration tests use the very same plans.

use std::collections::BTreeMap;

use crate::config::MigrationMode;
use crate::diff::{Move, RebalanceOutcome, RebalanceStop, ResourceSpread};
use crate::inventory::{Drift, DriftKind};
use crate::plan::{FORMAT_VERSION, Fingerprints, HostSummary, Plan, PlanError, unified_diff};
use crate::schedule::{Concurrency, DurationModel, SkippedStep, Step, StepKind, predict};

include!("../../tests/support/sample_plan.rs");
