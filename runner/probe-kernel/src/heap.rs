//! The heap `pmu-kernel-checks` allocates its records and strings from: a
//! linked-list allocator (phil-opp's `linked_list_allocator`) over a static
//! 1 MiB region in .bss. A case allocates a few kilobytes and frees them,
//! so a free list (rather than a bump allocator) keeps long plans in bounds.
//! Allocation failure panics (the `alloc` default), which the panic handler
//! turns into a message and exit code 1.

use core::mem::MaybeUninit;

use linked_list_allocator::LockedHeap;

const HEAP_BYTES: usize = 1 << 20;

static mut HEAP: [MaybeUninit<u8>; HEAP_BYTES] = [MaybeUninit::uninit(); HEAP_BYTES];

#[global_allocator]
static ALLOCATOR: LockedHeap = LockedHeap::empty();

/// Hands the region to the allocator. Called once, before anything allocates.
pub fn init() {
    // SAFETY: HEAP is used by nothing else, and init runs once.
    unsafe { ALLOCATOR.lock().init((&raw mut HEAP).cast(), HEAP_BYTES) }
}
