//! The set of tools an agent may call, by name.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::tool::{DynTool, SharedTool, Tool, ToolSpec};

/// Tools by name. Registering a name twice replaces the earlier tool.
#[derive(Clone, Default)]
pub struct ToolRegistry {
    tools: BTreeMap<String, SharedTool>,
    order: Vec<String>,
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.order).finish()
    }
}

impl ToolRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a typed tool.
    pub fn register(&mut self, tool: impl Tool) -> &mut Self {
        self.register_shared(Arc::new(tool))
    }

    /// Adds an already shared tool.
    pub fn register_shared(&mut self, tool: SharedTool) -> &mut Self {
        let name = DynTool::spec(tool.as_ref()).name;
        if self.tools.insert(name.clone(), tool).is_none() {
            self.order.push(name);
        }
        self
    }

    /// Adds every tool of `other`.
    pub fn extend(&mut self, other: ToolRegistry) -> &mut Self {
        for name in &other.order {
            if let Some(tool) = other.tools.get(name) {
                self.register_shared(tool.clone());
            }
        }
        self
    }

    /// The tool with this name.
    pub fn get(&self, name: &str) -> Option<&SharedTool> {
        self.tools.get(name)
    }

    /// The names, in registration order.
    pub fn names(&self) -> &[String] {
        &self.order
    }

    /// The specs, in registration order.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.order
            .iter()
            .filter_map(|n| self.tools.get(n))
            .map(|t| t.spec())
            .collect()
    }

    /// Whether there are no tools.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}
