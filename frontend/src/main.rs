//! Knowledge Neuron Studio web client (placeholder until the UI lands).
fn main() {}
