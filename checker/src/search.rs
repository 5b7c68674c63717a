//! Wing & Gong's linearizability search with Lowe's memoisation. (Being built.)
