//! Interventions on activations (SPEC).
