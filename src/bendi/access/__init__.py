"""Who may do what: accounts, departments, API keys, sessions, access lists, audit and usage (issue 14).

Low in the house (only core below it), so the knowledge and conversation layers can take the scope
values decided here without knowing about HTTP.
"""
