"""Grant providers for Microsoft Graph, Azure Resource Manager (and, beside them, webhooks)."""
