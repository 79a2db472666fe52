//! Selecting knowledge neurons (SPEC: "Selecting and refining").
