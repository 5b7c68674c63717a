//! Workloads: what Splitbrain's clients do, each bound to its checker model.
//! (Being built: see issue 4.)
