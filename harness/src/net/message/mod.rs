//! The message network (docs to come).
#![allow(dead_code)]

pub mod faults;
pub mod network;
pub mod relay;
pub mod wire;
