"""The WeCom (企业微信) self-built app channel: callbacks, API client, group sync."""
