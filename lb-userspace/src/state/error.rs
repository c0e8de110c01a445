//! Why an operation on the desired state was refused, and the policy checks that say so.
use std::{fmt, net::IpAddr};

use super::VipSpec;
use crate::config::{HealthCheckConfig, resolve_check, validate_policy};

/// Why an operation was refused: callers (the API) map the kind to a status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateError {
    pub kind: ErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The VIP or backend named does not exist.
    NotFound,
    /// It exists already.
    Conflict,
    /// The request itself is wrong (bad weight, ring size, family...).
    Invalid,
    /// A table is full.
    Capacity,
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StateError {}

pub(super) fn err<T>(kind: ErrorKind, message: impl Into<String>) -> Result<T, StateError> {
    Err(StateError {
        kind,
        message: message.into(),
    })
}

pub(super) fn check_policy(spec: &VipSpec) -> Result<(), StateError> {
    validate_policy(&spec.policy).map_err(|e| StateError {
        kind: ErrorKind::Invalid,
        message: format!("{}: {e:#}", spec.name()),
    })?;
    if spec.policy.outlier_detection.is_some() && spec.protocol != crate::config::Protocol::Tcp {
        return err(
            ErrorKind::Invalid,
            format!(
                "{}: outlier_detection applies to TCP VIPs only: UDP has no handshake whose \
                 answer shows a backend is serving",
                spec.name()
            ),
        );
    }
    resolve_check(spec.policy.health_check.as_ref(), None, spec.port)
        .map(drop)
        .map_err(|e| StateError {
            kind: ErrorKind::Invalid,
            message: format!("{}: {e:#}", spec.name()),
        })
}

pub(super) fn check_member_policy(
    spec: &VipSpec,
    over: Option<&HealthCheckConfig>,
    addr: IpAddr,
) -> Result<(), StateError> {
    resolve_check(spec.policy.health_check.as_ref(), over, spec.port)
        .map(drop)
        .map_err(|e| StateError {
            kind: ErrorKind::Invalid,
            message: format!("backend {addr} of {}: {e:#}", spec.name()),
        })
}
