//! Splitbrain's checker: histories, sequential models and the linearizability search.
//! (Being built: see issue 2.)
