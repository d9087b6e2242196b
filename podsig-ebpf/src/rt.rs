//! What every eBPF object needs: a panic handler, and its license.

#[cfg(not(test))]
#[panic_handler]
pub(crate) fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
pub(crate) static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
