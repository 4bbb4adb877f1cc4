//! One memory budget per instance. wasmtime's `StoreLimits` bounds each
//! linear memory alone and leaves tables, and the number of memories,
//! tables and core instances, at defaults in the thousands: a component
//! declaring a table of hundreds of millions of entries, or eight large
//! memories, made the host allocate gigabytes under a 16 MiB limit. Here
//! every memory and table the instance creates or grows is added up
//! against one budget, and their counts are capped. wasmtime asks before it
//! allocates, at instantiation as later, so an unknown component is safe to
//! instantiate (`metadata` on it included).

use wasmtime::ResourceLimiter;

/// Each table element costs the host a pointer (wasmtime's accounting).
const TABLE_ELEMENT_BYTES: usize = std::mem::size_of::<usize>();

/// Counts a component is held to. A Rust `wasm32-wasip2` connector has one
/// memory, a few tables (its own and the canonical ABI's shims) and a
/// handful of core instances; these leave room for other toolchains. The
/// engine's pooling allocator is shaped by the defaults: larger caps on one
/// instance are refused there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    /// Linear memories in one instance.
    pub memories: usize,
    /// Tables in one instance.
    pub tables: usize,
    /// Core module instances in one component instance.
    pub core_instances: usize,
    /// Elements of any one table.
    pub table_elements: usize,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            memories: 2,
            tables: 16,
            core_instances: 32,
            table_elements: 100_000,
        }
    }
}

/// What an instance was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BudgetExceeded {
    /// Memories and tables together would pass the budget.
    #[error("the component needs more than the {} MiB of memory and tables it may use (--memory-mb)", .0 >> 20)]
    Bytes(usize),
    /// One table would pass the element cap.
    #[error("the component asked for a table of more than {0} entries")]
    TableElements(usize),
}

/// The limiter kept in each store.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: usize,
    caps: Caps,
    used: usize,
    /// The last growth allowed, taken back if wasmtime then fails it.
    last_memory: usize,
    last_table: usize,
}

impl Budget {
    pub(crate) fn new(limit: usize, caps: Caps) -> Budget {
        Budget {
            limit,
            caps,
            used: 0,
            last_memory: 0,
            last_table: 0,
        }
    }

    /// Bytes of memories and tables the instance holds so far.
    pub(crate) fn used(&self) -> usize {
        self.used
    }

    fn take(&mut self, current: usize, desired: usize) -> Result<usize, BudgetExceeded> {
        let more = desired.saturating_sub(current);
        let used = self.used.saturating_add(more);
        if used > self.limit {
            return Err(BudgetExceeded::Bytes(self.limit));
        }
        self.used = used;
        Ok(more)
    }
}

// Refusals are errors, not `Ok(false)`: a refused growth then traps with a
// reason the host can name, rather than a `memory.grow` of -1 the guest
// turns into an abort of its own wording.
impl ResourceLimiter for Budget {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.last_memory = self.take(current, desired)?;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.used -= std::mem::take(&mut self.last_memory);
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.caps.table_elements {
            return Err(BudgetExceeded::TableElements(self.caps.table_elements).into());
        }
        self.last_table = self.take(
            current.saturating_mul(TABLE_ELEMENT_BYTES),
            desired.saturating_mul(TABLE_ELEMENT_BYTES),
        )?;
        Ok(true)
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.used -= std::mem::take(&mut self.last_table);
        Ok(())
    }

    fn instances(&self) -> usize {
        self.caps.core_instances
    }

    fn tables(&self) -> usize {
        self.caps.tables
    }

    fn memories(&self) -> usize {
        self.caps.memories
    }
}

/// Whether `err` is a refusal of the budget, and which.
pub(crate) fn exceeded(err: &wasmtime::Error) -> Option<BudgetExceeded> {
    err.chain()
        .find_map(|c| c.downcast_ref::<BudgetExceeded>().copied())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn memories_and_tables_add_up_against_one_budget() {
        let caps = Caps {
            table_elements: 1 << 20,
            ..Caps::default()
        };
        let mut b = Budget::new(10 << 20, caps);
        assert!(b.memory_growing(0, 4 << 20, None).unwrap());
        assert!(b.memory_growing(0, 4 << 20, None).unwrap());
        // 2 MiB of table would pass 10 MiB with the 8 MiB of memories.
        let err = b.table_growing(0, (3 << 20) / 8, None).unwrap_err();
        assert_eq!(exceeded(&err), Some(BudgetExceeded::Bytes(10 << 20)));
        assert!(b.table_growing(0, (1 << 20) / 8, None).unwrap());
        assert_eq!(b.used(), 9 << 20);
        // Growing counts only what is added.
        assert!(b.memory_growing(4 << 20, 5 << 20, None).unwrap());
        assert!(b.memory_growing(5 << 20, 6 << 20, None).is_err());
    }

    #[test]
    fn a_failed_growth_gives_its_share_back() {
        let mut b = Budget::new(8 << 20, Caps::default());
        assert!(b.memory_growing(0, 6 << 20, None).unwrap());
        b.memory_grow_failed(wasmtime::format_err!("os")).unwrap();
        assert_eq!(b.used(), 0);
        assert!(b.table_growing(0, 1 << 10, None).unwrap());
        b.table_grow_failed(wasmtime::format_err!("max")).unwrap();
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn one_table_is_capped_in_entries() {
        let caps = Caps {
            table_elements: 100,
            ..Caps::default()
        };
        let mut b = Budget::new(1 << 30, caps);
        let err = b.table_growing(0, 101, None).unwrap_err();
        assert_eq!(exceeded(&err), Some(BudgetExceeded::TableElements(100)));
        assert_eq!(
            BudgetExceeded::Bytes(16 << 20).to_string(),
            "the component needs more than the 16 MiB of memory and tables it may use (--memory-mb)"
        );
    }
}
