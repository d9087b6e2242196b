#![no_std]
// Empty library target: lets `podsig` declare a build-dependency on this crate so cargo
// rebuilds the embedded eBPF object when it changes (the program itself is the `podsig` bin).
