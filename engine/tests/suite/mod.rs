mod always;
mod crash;
mod definitions;
mod determinism;
mod faults;
mod flows;
mod history;
mod sled;
