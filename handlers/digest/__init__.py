"""The admins' periodic digest: the report (report), its queries (queries), the security
alerts it carries (alerts), and sending it once per schedule firing (send)."""
