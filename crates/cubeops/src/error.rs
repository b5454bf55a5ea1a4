//! Errors of the ops API. Every bad input is reported as a value naming the argument;
//! nothing in the public API panics on user input.

use std::fmt;

/// What went wrong with a call, and which argument caused it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpError {
    /// The tensor has the wrong number of dimensions.
    Rank { arg: &'static str, expected: String, got: usize },
    /// The dimensions do not fit the op or each other.
    Shape { arg: &'static str, message: String },
    /// The element types of two arguments differ, or the type is not supported.
    DType { arg: &'static str, message: String },
    /// The arguments live on different devices.
    Device { arg: &'static str, message: String },
    /// Valid input that this backend or device cannot run.
    Unsupported { message: String },
}

impl OpError {
    /// The argument the error is about, if any.
    pub fn arg(&self) -> Option<&'static str> {
        match self {
            OpError::Rank { arg, .. }
            | OpError::Shape { arg, .. }
            | OpError::DType { arg, .. }
            | OpError::Device { arg, .. } => Some(arg),
            OpError::Unsupported { .. } => None,
        }
    }
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpError::Rank { arg, expected, got } => {
                write!(f, "`{arg}` must have {expected} dimensions, got {got}")
            }
            OpError::Shape { arg, message }
            | OpError::DType { arg, message }
            | OpError::Device { arg, message } => write!(f, "`{arg}`: {message}"),
            OpError::Unsupported { message } => f.write_str(message),
        }
    }
}

impl std::error::Error for OpError {}
