
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'defender-ingest' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'defender-ingest'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'defender-ingest' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Which connection (tenant + app registration) to use')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Which connection (tenant + app registration) to use')
            [CompletionResult]::new('--state-dir', '--state-dir', [CompletionResultType]::ParameterName, 'Where the TOML state and lock files live [default: the platform''s state dir]')
            [CompletionResult]::new('--ca-bundle', '--ca-bundle', [CompletionResultType]::ParameterName, 'Trust the CAs in this PEM bundle too (e.g. a TLS-inspecting proxy''s CA). `SSL_CERT_FILE` does the same')
            [CompletionResult]::new('--proxy', '--proxy', [CompletionResultType]::ParameterName, 'Send every request through this proxy, e.g. http://user:pass@proxy:3128 (overrides HTTPS_PROXY/HTTP_PROXY/NO_PROXY; "" turns proxies off). Without it the environment''s proxies are used, never for loopback hosts')
            [CompletionResult]::new('--connect-timeout', '--connect-timeout', [CompletionResultType]::ParameterName, 'Seconds to wait for a connection (TCP, the proxy''s CONNECT, TLS)')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'Seconds one HTTP request may take, body included; a request that takes longer counts as failed and is retried')
            [CompletionResult]::new('--max-retries', '--max-retries', [CompletionResultType]::ParameterName, 'How often to retry an API request that failed in a way that may pass (429, 5xx, reset, cut-off body, timeout), with exponential backoff')
            [CompletionResult]::new('--calls-per-minute', '--calls-per-minute', [CompletionResultType]::ParameterName, 'API calls per minute this tool allows itself (and 15× that per hour, at least 1,500). Microsoft allows 100/min and 1,500/h per app and tenant: raise it only if Microsoft raised your limits, or against the sandbox (the benchmark does)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less logging on stderr: errors only')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less logging on stderr: errors only')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('authorize', 'authorize', [CompletionResultType]::ParameterValue, 'Connect a profile to a Defender for Endpoint tenant and store its credentials in the OS keyring')
            [CompletionResult]::new('test', 'test', [CompletionResultType]::ParameterValue, 'Check that the credentials work and each endpoint returns data that parses; moves no cursor')
            [CompletionResult]::new('enable', 'enable', [CompletionResultType]::ParameterValue, 'Switch ingestion on: `pull` fetches data for this profile from now on')
            [CompletionResult]::new('disable', 'disable', [CompletionResultType]::ParameterValue, 'Switch ingestion off; configuration, credentials and cursors are kept')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show a profile: tenant, enabled, authorized, and each endpoint''s position. Never prints a secret')
            [CompletionResult]::new('pull', 'pull', [CompletionResultType]::ParameterValue, 'Fetch every record new or changed since the last pull and write it as one JSON line')
            [CompletionResult]::new('logout', 'logout', [CompletionResultType]::ParameterValue, 'Remove a profile''s credentials from the OS keyring (keeps configuration and cursors)')
            [CompletionResult]::new('sandbox', 'sandbox', [CompletionResultType]::ParameterValue, 'Serve the built-in sandbox tenant (a local Entra ID + Defender API) in the foreground')
            [CompletionResult]::new('demo', 'demo', [CompletionResultType]::ParameterValue, 'Run the whole journey against a throwaway sandbox: authorize, test, enable, pull to stdout')
            [CompletionResult]::new('generate', 'generate', [CompletionResultType]::ParameterValue, 'Write shell completions and the man page (used to refresh `completions/`)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'defender-ingest;authorize' {
            [CompletionResult]::new('--tenant', '--tenant', [CompletionResultType]::ParameterName, 'Entra tenant id (GUID) or domain; required the first time')
            [CompletionResult]::new('--client-id', '--client-id', [CompletionResultType]::ParameterName, 'Application (client) id of the app registration; required the first time')
            [CompletionResult]::new('--flow', '--flow', [CompletionResultType]::ParameterName, 'How to sign in')
            [CompletionResult]::new('--cloud', '--cloud', [CompletionResultType]::ParameterName, 'Presets for the sign-in authority, the API host and the scope')
            [CompletionResult]::new('--login-url', '--login-url', [CompletionResultType]::ParameterName, 'Override the sign-in authority, e.g. http://127.0.0.1:8400')
            [CompletionResult]::new('--api-url', '--api-url', [CompletionResultType]::ParameterName, 'Override the API base URL')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'Loopback port for the browser redirect [default: any free port]')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Seconds to wait for the browser or the device-code sign-in')
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Which connection (tenant + app registration) to use')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Which connection (tenant + app registration) to use')
            [CompletionResult]::new('--state-dir', '--state-dir', [CompletionResultType]::ParameterName, 'Where the TOML state and lock files live [default: the platform''s state dir]')
            [CompletionResult]::new('--ca-bundle', '--ca-bundle', [CompletionResultType]::ParameterName, 'Trust the CAs in this PEM bundle too (e.g. a TLS-inspecting proxy''s CA). `SSL_CERT_FILE` does the same')
            [CompletionResult]::new('--proxy', '--proxy', [CompletionResultType]::ParameterName, 'Send every request through this proxy, e.g. http://user:pass@proxy:3128 (overrides HTTPS_PROXY/HTTP_PROXY/NO_PROXY; "" turns proxies off). Without it the environment''s proxies are used, never for loopback hosts')
            [CompletionResult]::new('--connect-timeout', '--connect-timeout', [CompletionResultType]::ParameterName, 'Seconds to wait for a connection (TCP, the proxy''s CONNECT, TLS)')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'Seconds one HTTP request may take, body included; a request that takes longer counts as failed and is retried')
            [CompletionResult]::new('--max-retries', '--max-retries', [CompletionResultType]::ParameterName, 'How often to retry an API request that failed in a way that may pass (429, 5xx, reset, cut-off body, timeout), with exponential backoff')
            [CompletionResult]::new('--calls-per-minute', '--calls-per-minute', [CompletionResultType]::ParameterName, 'API calls per minute this tool allows itself (and 15× that per hour, at least 1,500). Microsoft allows 100/min and 1,500/h per app and tenant: raise it only if Microsoft raised your limits, or against the sandbox (the benchmark does)')
            [CompletionResult]::new('--no-browser', '--no-browser', [CompletionResultType]::ParameterName, 'Do not launch a browser; print the sign-in URL on stderr and wait')
            [CompletionResult]::new('--client-secret-stdin', '--client-secret-stdin', [CompletionResultType]::ParameterName, 'With --flow client-secret: read the client secret from stdin')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less logging on stderr: errors only')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less logging on stderr: errors only')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'defender-ingest;test' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Which connection (tenant + app registration) to use')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Which connection (tenant + app registration) to use')
            [CompletionResult]::new('--state-dir', '--state-dir', [CompletionResultType]::ParameterName, 'Where the TOML state and lock files live [default: the platform''s state dir]')
            [CompletionResult]::new('--ca-bundle', '--ca-bundle', [CompletionResultType]::ParameterName, 'Trust the CAs in this PEM bundle too (e.g. a TLS-inspecting proxy''s CA). `SSL_CERT_FILE` does the same')
            [CompletionResult]::new('--proxy', '--proxy', [CompletionResultType]::ParameterName, 'Send every request through this proxy, e.g. http://user:pass@proxy:3128 (overrides HTTPS_PROXY/HTTP_PROXY/NO_PROXY; "" turns proxies off). Without it the environment''s proxies are used, never for loopback hosts')
            [CompletionResult]::new('--connect-timeout', '--connect-timeout', [CompletionResultType]::ParameterName, 'Seconds to wait for a connection (TCP, the proxy''s CONNECT, TLS)')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'Seconds one HTTP request may take, body included; a request that takes longer counts as failed and is retried')
            [CompletionResult]::new('--max-retries', '--max-retries', [CompletionResultType]::ParameterName, 'How often to retry an API request that failed in a way that may pass (429, 5xx, reset, cut-off body, timeout), with exponential backoff')
            [CompletionResult]::new('--calls-per-minute', '--calls-per-minute', [CompletionResultType]::ParameterName, 'API calls per minute this tool allows itself (and 15× that per hour, at least 1,500). Microsoft allows 100/min and 1,500/h per app and tenant: raise it only if Microsoft raised your limits, or against the sandbox (the benchmark does)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON object on stdout instead of a table on stderr')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less logging on stderr: errors only')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less logging on stderr: errors only')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'defender-ingest;enable' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Which connection (tenant + app registration) to use')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Which connection (tenant + app registration) to use')
            [CompletionResult]::new('--state-dir', '--state-dir', [CompletionResultType]::ParameterName, 'Where the TOML state and lock files live [default: the platform''s state dir]')
            [CompletionResult]::new('--ca-bundle', '--ca-bundle', [CompletionResultType]::ParameterName, 'Trust the CAs in this PEM bundle too (e.g. a TLS-inspecting proxy''s CA). `SSL_CERT_FILE` does the same')
            [CompletionResult]::new('--proxy', '--proxy', [CompletionResultType]::ParameterName, 'Send every request through this proxy, e.g. http://user:pass@proxy:3128 (overrides HTTPS_PROXY/HTTP_PROXY/NO_PROXY; "" turns proxies off). Without it the environment''s proxies are used, never for loopback hosts')
            [CompletionResult]::new('--connect-timeout', '--connect-timeout', [CompletionResultType]::ParameterName, 'Seconds to wait for a connection (TCP, the proxy''s CONNECT, TLS)')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'Seconds one HTTP request may take, body included; a request that takes longer counts as failed and is retried')
            [CompletionResult]::new('--max-retries', '--max-retries', [CompletionResultType]::ParameterName, 'How often to retry an API request that failed in a way that may pass (429, 5xx, reset, cut-off body, timeout), with exponential backoff')
            [CompletionResult]::new('--calls-per-minute', '--calls-per-minute', [CompletionResultType]::ParameterName, 'API calls per minute this tool allows itself (and 15× that per hour, at least 1,500). Microsoft allows 100/min and 1,500/h per app and tenant: raise it only if Microsoft raised your limits, or against the sandbox (the benchmark does)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less logging on stderr: errors only')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less logging on stderr: errors only')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'defender-ingest;disable' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Which connection (tenant + app registration) to use')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Which connection (tenant + app registration) to use')
            [CompletionResult]::new('--state-dir', '--state-dir', [CompletionResultType]::ParameterName, 'Where the TOML state and lock files live [default: the platform''s state dir]')
            [CompletionResult]::new('--ca-bundle', '--ca-bundle', [CompletionResultType]::ParameterName, 'Trust the CAs in this PEM bundle too (e.g. a TLS-inspecting proxy''s CA). `SSL_CERT_FILE` does the same')
            [CompletionResult]::new('--proxy', '--proxy', [CompletionResultType]::ParameterName, 'Send every request through this proxy, e.g. http://user:pass@proxy:3128 (overrides HTTPS_PROXY/HTTP_PROXY/NO_PROXY; "" turns proxies off). Without it the environment''s proxies are used, never for loopback hosts')
            [CompletionResult]::new('--connect-timeout', '--connect-timeout', [CompletionResultType]::ParameterName, 'Seconds to wait for a connection (TCP, the proxy''s CONNECT, TLS)')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'Seconds one HTTP request may take, body included; a request that takes longer counts as failed and is retried')
            [CompletionResult]::new('--max-retries', '--max-retries', [CompletionResultType]::ParameterName, 'How often to retry an API request that failed in a way that may pass (429, 5xx, reset, cut-off body, timeout), with exponential backoff')
            [CompletionResult]::new('--calls-per-minute', '--calls-per-minute', [CompletionResultType]::ParameterName, 'API calls per minute this tool allows itself (and 15× that per hour, at least 1,500). Microsoft allows 100/min and 1,500/h per app and tenant: raise it only if Microsoft raised your limits, or against the sandbox (the benchmark does)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less logging on stderr: errors only')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less logging on stderr: errors only')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'defender-ingest;status' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Which connection (tenant + app registration) to use')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Which connection (tenant + app registration) to use')
            [CompletionResult]::new('--state-dir', '--state-dir', [CompletionResultType]::ParameterName, 'Where the TOML state and lock files live [default: the platform''s state dir]')
            [CompletionResult]::new('--ca-bundle', '--ca-bundle', [CompletionResultType]::ParameterName, 'Trust the CAs in this PEM bundle too (e.g. a TLS-inspecting proxy''s CA). `SSL_CERT_FILE` does the same')
            [CompletionResult]::new('--proxy', '--proxy', [CompletionResultType]::ParameterName, 'Send every request through this proxy, e.g. http://user:pass@proxy:3128 (overrides HTTPS_PROXY/HTTP_PROXY/NO_PROXY; "" turns proxies off). Without it the environment''s proxies are used, never for loopback hosts')
            [CompletionResult]::new('--connect-timeout', '--connect-timeout', [CompletionResultType]::ParameterName, 'Seconds to wait for a connection (TCP, the proxy''s CONNECT, TLS)')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'Seconds one HTTP request may take, body included; a request that takes longer counts as failed and is retried')
            [CompletionResult]::new('--max-retries', '--max-retries', [CompletionResultType]::ParameterName, 'How often to retry an API request that failed in a way that may pass (429, 5xx, reset, cut-off body, timeout), with exponential backoff')
            [CompletionResult]::new('--calls-per-minute', '--calls-per-minute', [CompletionResultType]::ParameterName, 'API calls per minute this tool allows itself (and 15× that per hour, at least 1,500). Microsoft allows 100/min and 1,500/h per app and tenant: raise it only if Microsoft raised your limits, or against the sandbox (the benchmark does)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON object on stdout')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less logging on stderr: errors only')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less logging on stderr: errors only')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'defender-ingest;pull' {
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Append JSONL to PATH (''-'' is stdout)')
            [CompletionResult]::new('--since', '--since', [CompletionResultType]::ParameterName, 'First run only: how far back to start, a duration (7d, 12h) or an RFC 3339 time [default: 7d]')
            [CompletionResult]::new('--lookback', '--lookback', [CompletionResultType]::ParameterName, 'Re-read alerts updated this long before the cursor, for records that become visible late')
            [CompletionResult]::new('--investigation-window', '--investigation-window', [CompletionResultType]::ParameterName, 'Re-read investigations started within this window; they change without a timestamp')
            [CompletionResult]::new('--deadline', '--deadline', [CompletionResultType]::ParameterName, 'Stop starting new requests after this long (keep it under the cron interval); what was written is kept and the rest comes next pull')
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Which connection (tenant + app registration) to use')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Which connection (tenant + app registration) to use')
            [CompletionResult]::new('--state-dir', '--state-dir', [CompletionResultType]::ParameterName, 'Where the TOML state and lock files live [default: the platform''s state dir]')
            [CompletionResult]::new('--ca-bundle', '--ca-bundle', [CompletionResultType]::ParameterName, 'Trust the CAs in this PEM bundle too (e.g. a TLS-inspecting proxy''s CA). `SSL_CERT_FILE` does the same')
            [CompletionResult]::new('--proxy', '--proxy', [CompletionResultType]::ParameterName, 'Send every request through this proxy, e.g. http://user:pass@proxy:3128 (overrides HTTPS_PROXY/HTTP_PROXY/NO_PROXY; "" turns proxies off). Without it the environment''s proxies are used, never for loopback hosts')
            [CompletionResult]::new('--connect-timeout', '--connect-timeout', [CompletionResultType]::ParameterName, 'Seconds to wait for a connection (TCP, the proxy''s CONNECT, TLS)')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'Seconds one HTTP request may take, body included; a request that takes longer counts as failed and is retried')
            [CompletionResult]::new('--max-retries', '--max-retries', [CompletionResultType]::ParameterName, 'How often to retry an API request that failed in a way that may pass (429, 5xx, reset, cut-off body, timeout), with exponential backoff')
            [CompletionResult]::new('--calls-per-minute', '--calls-per-minute', [CompletionResultType]::ParameterName, 'API calls per minute this tool allows itself (and 15× that per hour, at least 1,500). Microsoft allows 100/min and 1,500/h per app and tenant: raise it only if Microsoft raised your limits, or against the sandbox (the benchmark does)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less logging on stderr: errors only')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less logging on stderr: errors only')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'defender-ingest;logout' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Which connection (tenant + app registration) to use')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Which connection (tenant + app registration) to use')
            [CompletionResult]::new('--state-dir', '--state-dir', [CompletionResultType]::ParameterName, 'Where the TOML state and lock files live [default: the platform''s state dir]')
            [CompletionResult]::new('--ca-bundle', '--ca-bundle', [CompletionResultType]::ParameterName, 'Trust the CAs in this PEM bundle too (e.g. a TLS-inspecting proxy''s CA). `SSL_CERT_FILE` does the same')
            [CompletionResult]::new('--proxy', '--proxy', [CompletionResultType]::ParameterName, 'Send every request through this proxy, e.g. http://user:pass@proxy:3128 (overrides HTTPS_PROXY/HTTP_PROXY/NO_PROXY; "" turns proxies off). Without it the environment''s proxies are used, never for loopback hosts')
            [CompletionResult]::new('--connect-timeout', '--connect-timeout', [CompletionResultType]::ParameterName, 'Seconds to wait for a connection (TCP, the proxy''s CONNECT, TLS)')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'Seconds one HTTP request may take, body included; a request that takes longer counts as failed and is retried')
            [CompletionResult]::new('--max-retries', '--max-retries', [CompletionResultType]::ParameterName, 'How often to retry an API request that failed in a way that may pass (429, 5xx, reset, cut-off body, timeout), with exponential backoff')
            [CompletionResult]::new('--calls-per-minute', '--calls-per-minute', [CompletionResultType]::ParameterName, 'API calls per minute this tool allows itself (and 15× that per hour, at least 1,500). Microsoft allows 100/min and 1,500/h per app and tenant: raise it only if Microsoft raised your limits, or against the sandbox (the benchmark does)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less logging on stderr: errors only')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less logging on stderr: errors only')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'defender-ingest;sandbox' {
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'Port on 127.0.0.1 [default: any free port]')
            [CompletionResult]::new('--alerts', '--alerts', [CompletionResultType]::ParameterName, 'How many alerts the tenant starts with')
            [CompletionResult]::new('--seed', '--seed', [CompletionResultType]::ParameterName, 'Seed for the synthetic data')
            [CompletionResult]::new('--tls-ca-out', '--tls-ca-out', [CompletionResultType]::ParameterName, 'Serve HTTPS with a freshly generated CA; its PEM is written to this path')
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Which connection (tenant + app registration) to use')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Which connection (tenant + app registration) to use')
            [CompletionResult]::new('--state-dir', '--state-dir', [CompletionResultType]::ParameterName, 'Where the TOML state and lock files live [default: the platform''s state dir]')
            [CompletionResult]::new('--ca-bundle', '--ca-bundle', [CompletionResultType]::ParameterName, 'Trust the CAs in this PEM bundle too (e.g. a TLS-inspecting proxy''s CA). `SSL_CERT_FILE` does the same')
            [CompletionResult]::new('--proxy', '--proxy', [CompletionResultType]::ParameterName, 'Send every request through this proxy, e.g. http://user:pass@proxy:3128 (overrides HTTPS_PROXY/HTTP_PROXY/NO_PROXY; "" turns proxies off). Without it the environment''s proxies are used, never for loopback hosts')
            [CompletionResult]::new('--connect-timeout', '--connect-timeout', [CompletionResultType]::ParameterName, 'Seconds to wait for a connection (TCP, the proxy''s CONNECT, TLS)')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'Seconds one HTTP request may take, body included; a request that takes longer counts as failed and is retried')
            [CompletionResult]::new('--max-retries', '--max-retries', [CompletionResultType]::ParameterName, 'How often to retry an API request that failed in a way that may pass (429, 5xx, reset, cut-off body, timeout), with exponential backoff')
            [CompletionResult]::new('--calls-per-minute', '--calls-per-minute', [CompletionResultType]::ParameterName, 'API calls per minute this tool allows itself (and 15× that per hour, at least 1,500). Microsoft allows 100/min and 1,500/h per app and tenant: raise it only if Microsoft raised your limits, or against the sandbox (the benchmark does)')
            [CompletionResult]::new('--chunked', '--chunked', [CompletionResultType]::ParameterName, 'Send API pages chunked as they are rendered, without a Content-Length (as a streaming OData service may), instead of each rendered whole first')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less logging on stderr: errors only')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less logging on stderr: errors only')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'defender-ingest;demo' {
            [CompletionResult]::new('--alerts', '--alerts', [CompletionResultType]::ParameterName, 'How many alerts the sandbox tenant starts with')
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Which connection (tenant + app registration) to use')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Which connection (tenant + app registration) to use')
            [CompletionResult]::new('--state-dir', '--state-dir', [CompletionResultType]::ParameterName, 'Where the TOML state and lock files live [default: the platform''s state dir]')
            [CompletionResult]::new('--ca-bundle', '--ca-bundle', [CompletionResultType]::ParameterName, 'Trust the CAs in this PEM bundle too (e.g. a TLS-inspecting proxy''s CA). `SSL_CERT_FILE` does the same')
            [CompletionResult]::new('--proxy', '--proxy', [CompletionResultType]::ParameterName, 'Send every request through this proxy, e.g. http://user:pass@proxy:3128 (overrides HTTPS_PROXY/HTTP_PROXY/NO_PROXY; "" turns proxies off). Without it the environment''s proxies are used, never for loopback hosts')
            [CompletionResult]::new('--connect-timeout', '--connect-timeout', [CompletionResultType]::ParameterName, 'Seconds to wait for a connection (TCP, the proxy''s CONNECT, TLS)')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'Seconds one HTTP request may take, body included; a request that takes longer counts as failed and is retried')
            [CompletionResult]::new('--max-retries', '--max-retries', [CompletionResultType]::ParameterName, 'How often to retry an API request that failed in a way that may pass (429, 5xx, reset, cut-off body, timeout), with exponential backoff')
            [CompletionResult]::new('--calls-per-minute', '--calls-per-minute', [CompletionResultType]::ParameterName, 'API calls per minute this tool allows itself (and 15× that per hour, at least 1,500). Microsoft allows 100/min and 1,500/h per app and tenant: raise it only if Microsoft raised your limits, or against the sandbox (the benchmark does)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less logging on stderr: errors only')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less logging on stderr: errors only')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'defender-ingest;generate' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Which connection (tenant + app registration) to use')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Which connection (tenant + app registration) to use')
            [CompletionResult]::new('--state-dir', '--state-dir', [CompletionResultType]::ParameterName, 'Where the TOML state and lock files live [default: the platform''s state dir]')
            [CompletionResult]::new('--ca-bundle', '--ca-bundle', [CompletionResultType]::ParameterName, 'Trust the CAs in this PEM bundle too (e.g. a TLS-inspecting proxy''s CA). `SSL_CERT_FILE` does the same')
            [CompletionResult]::new('--proxy', '--proxy', [CompletionResultType]::ParameterName, 'Send every request through this proxy, e.g. http://user:pass@proxy:3128 (overrides HTTPS_PROXY/HTTP_PROXY/NO_PROXY; "" turns proxies off). Without it the environment''s proxies are used, never for loopback hosts')
            [CompletionResult]::new('--connect-timeout', '--connect-timeout', [CompletionResultType]::ParameterName, 'Seconds to wait for a connection (TCP, the proxy''s CONNECT, TLS)')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'Seconds one HTTP request may take, body included; a request that takes longer counts as failed and is retried')
            [CompletionResult]::new('--max-retries', '--max-retries', [CompletionResultType]::ParameterName, 'How often to retry an API request that failed in a way that may pass (429, 5xx, reset, cut-off body, timeout), with exponential backoff')
            [CompletionResult]::new('--calls-per-minute', '--calls-per-minute', [CompletionResultType]::ParameterName, 'API calls per minute this tool allows itself (and 15× that per hour, at least 1,500). Microsoft allows 100/min and 1,500/h per app and tenant: raise it only if Microsoft raised your limits, or against the sandbox (the benchmark does)')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Less logging on stderr: errors only')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Less logging on stderr: errors only')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'defender-ingest;help' {
            [CompletionResult]::new('authorize', 'authorize', [CompletionResultType]::ParameterValue, 'Connect a profile to a Defender for Endpoint tenant and store its credentials in the OS keyring')
            [CompletionResult]::new('test', 'test', [CompletionResultType]::ParameterValue, 'Check that the credentials work and each endpoint returns data that parses; moves no cursor')
            [CompletionResult]::new('enable', 'enable', [CompletionResultType]::ParameterValue, 'Switch ingestion on: `pull` fetches data for this profile from now on')
            [CompletionResult]::new('disable', 'disable', [CompletionResultType]::ParameterValue, 'Switch ingestion off; configuration, credentials and cursors are kept')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show a profile: tenant, enabled, authorized, and each endpoint''s position. Never prints a secret')
            [CompletionResult]::new('pull', 'pull', [CompletionResultType]::ParameterValue, 'Fetch every record new or changed since the last pull and write it as one JSON line')
            [CompletionResult]::new('logout', 'logout', [CompletionResultType]::ParameterValue, 'Remove a profile''s credentials from the OS keyring (keeps configuration and cursors)')
            [CompletionResult]::new('sandbox', 'sandbox', [CompletionResultType]::ParameterValue, 'Serve the built-in sandbox tenant (a local Entra ID + Defender API) in the foreground')
            [CompletionResult]::new('demo', 'demo', [CompletionResultType]::ParameterValue, 'Run the whole journey against a throwaway sandbox: authorize, test, enable, pull to stdout')
            [CompletionResult]::new('generate', 'generate', [CompletionResultType]::ParameterValue, 'Write shell completions and the man page (used to refresh `completions/`)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'defender-ingest;help;authorize' {
            break
        }
        'defender-ingest;help;test' {
            break
        }
        'defender-ingest;help;enable' {
            break
        }
        'defender-ingest;help;disable' {
            break
        }
        'defender-ingest;help;status' {
            break
        }
        'defender-ingest;help;pull' {
            break
        }
        'defender-ingest;help;logout' {
            break
        }
        'defender-ingest;help;sandbox' {
            break
        }
        'defender-ingest;help;demo' {
            break
        }
        'defender-ingest;help;generate' {
            break
        }
        'defender-ingest;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
