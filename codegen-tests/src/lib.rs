//! Tests for the flowgate compiler and runtime.
