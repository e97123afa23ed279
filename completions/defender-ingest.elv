
use builtin;
use str;

set edit:completion:arg-completer[defender-ingest] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'defender-ingest'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'defender-ingest'= {
            cand -p 'Which connection (tenant + app registration) to use'
            cand --profile 'Which connection (tenant + app registration) to use'
            cand --state-dir 'Where the TOML state and lock files live [default: the platform''s state dir]'
            cand --ca-bundle 'Trust the CAs in this PEM bundle too (e.g. a TLS-inspecting proxy''s CA). `SSL_CERT_FILE` does the same'
            cand --proxy 'Send every request through this proxy, e.g. http://user:pass@proxy:3128 (overrides HTTPS_PROXY/HTTP_PROXY/NO_PROXY; "" turns proxies off). Without it the environment''s proxies are used, never for loopback hosts'
            cand --connect-timeout 'Seconds to wait for a connection (TCP, the proxy''s CONNECT, TLS)'
            cand --request-timeout 'Seconds one HTTP request may take, body included; a request that takes longer counts as failed and is retried'
            cand --max-retries 'How often to retry an API request that failed in a way that may pass (429, 5xx, reset, cut-off body, timeout), with exponential backoff'
            cand --calls-per-minute 'API calls per minute this tool allows itself (and 15× that per hour, at least 1,500). Microsoft allows 100/min and 1,500/h per app and tenant: raise it only if Microsoft raised your limits, or against the sandbox (the benchmark does)'
            cand -v 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)'
            cand --verbose 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)'
            cand -q 'Less logging on stderr: errors only'
            cand --quiet 'Less logging on stderr: errors only'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand authorize 'Connect a profile to a Defender for Endpoint tenant and store its credentials in the OS keyring'
            cand test 'Check that the credentials work and each endpoint returns data that parses; moves no cursor'
            cand enable 'Switch ingestion on: `pull` fetches data for this profile from now on'
            cand disable 'Switch ingestion off; configuration, credentials and cursors are kept'
            cand status 'Show a profile: tenant, enabled, authorized, and each endpoint''s position. Never prints a secret'
            cand pull 'Fetch every record new or changed since the last pull and write it as one JSON line'
            cand logout 'Remove a profile''s credentials from the OS keyring (keeps configuration and cursors)'
            cand sandbox 'Serve the built-in sandbox tenant (a local Entra ID + Defender API) in the foreground'
            cand demo 'Run the whole journey against a throwaway sandbox: authorize, test, enable, pull to stdout'
            cand generate 'Write shell completions and the man page (used to refresh `completions/`)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'defender-ingest;authorize'= {
            cand --tenant 'Entra tenant id (GUID) or domain; required the first time'
            cand --client-id 'Application (client) id of the app registration; required the first time'
            cand --flow 'How to sign in'
            cand --cloud 'Presets for the sign-in authority, the API host and the scope'
            cand --login-url 'Override the sign-in authority, e.g. http://127.0.0.1:8400'
            cand --api-url 'Override the API base URL'
            cand --port 'Loopback port for the browser redirect [default: any free port]'
            cand --timeout 'Seconds to wait for the browser or the device-code sign-in'
            cand -p 'Which connection (tenant + app registration) to use'
            cand --profile 'Which connection (tenant + app registration) to use'
            cand --state-dir 'Where the TOML state and lock files live [default: the platform''s state dir]'
            cand --ca-bundle 'Trust the CAs in this PEM bundle too (e.g. a TLS-inspecting proxy''s CA). `SSL_CERT_FILE` does the same'
            cand --proxy 'Send every request through this proxy, e.g. http://user:pass@proxy:3128 (overrides HTTPS_PROXY/HTTP_PROXY/NO_PROXY; "" turns proxies off). Without it the environment''s proxies are used, never for loopback hosts'
            cand --connect-timeout 'Seconds to wait for a connection (TCP, the proxy''s CONNECT, TLS)'
            cand --request-timeout 'Seconds one HTTP request may take, body included; a request that takes longer counts as failed and is retried'
            cand --max-retries 'How often to retry an API request that failed in a way that may pass (429, 5xx, reset, cut-off body, timeout), with exponential backoff'
            cand --calls-per-minute 'API calls per minute this tool allows itself (and 15× that per hour, at least 1,500). Microsoft allows 100/min and 1,500/h per app and tenant: raise it only if Microsoft raised your limits, or against the sandbox (the benchmark does)'
            cand --no-browser 'Do not launch a browser; print the sign-in URL on stderr and wait'
            cand --client-secret-stdin 'With --flow client-secret: read the client secret from stdin'
            cand -v 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)'
            cand --verbose 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)'
            cand -q 'Less logging on stderr: errors only'
            cand --quiet 'Less logging on stderr: errors only'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'defender-ingest;test'= {
            cand -p 'Which connection (tenant + app registration) to use'
            cand --profile 'Which connection (tenant + app registration) to use'
            cand --state-dir 'Where the TOML state and lock files live [default: the platform''s state dir]'
            cand --ca-bundle 'Trust the CAs in this PEM bundle too (e.g. a TLS-inspecting proxy''s CA). `SSL_CERT_FILE` does the same'
            cand --proxy 'Send every request through this proxy, e.g. http://user:pass@proxy:3128 (overrides HTTPS_PROXY/HTTP_PROXY/NO_PROXY; "" turns proxies off). Without it the environment''s proxies are used, never for loopback hosts'
            cand --connect-timeout 'Seconds to wait for a connection (TCP, the proxy''s CONNECT, TLS)'
            cand --request-timeout 'Seconds one HTTP request may take, body included; a request that takes longer counts as failed and is retried'
            cand --max-retries 'How often to retry an API request that failed in a way that may pass (429, 5xx, reset, cut-off body, timeout), with exponential backoff'
            cand --calls-per-minute 'API calls per minute this tool allows itself (and 15× that per hour, at least 1,500). Microsoft allows 100/min and 1,500/h per app and tenant: raise it only if Microsoft raised your limits, or against the sandbox (the benchmark does)'
            cand --json 'Print one JSON object on stdout instead of a table on stderr'
            cand -v 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)'
            cand --verbose 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)'
            cand -q 'Less logging on stderr: errors only'
            cand --quiet 'Less logging on stderr: errors only'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'defender-ingest;enable'= {
            cand -p 'Which connection (tenant + app registration) to use'
            cand --profile 'Which connection (tenant + app registration) to use'
            cand --state-dir 'Where the TOML state and lock files live [default: the platform''s state dir]'
            cand --ca-bundle 'Trust the CAs in this PEM bundle too (e.g. a TLS-inspecting proxy''s CA). `SSL_CERT_FILE` does the same'
            cand --proxy 'Send every request through this proxy, e.g. http://user:pass@proxy:3128 (overrides HTTPS_PROXY/HTTP_PROXY/NO_PROXY; "" turns proxies off). Without it the environment''s proxies are used, never for loopback hosts'
            cand --connect-timeout 'Seconds to wait for a connection (TCP, the proxy''s CONNECT, TLS)'
            cand --request-timeout 'Seconds one HTTP request may take, body included; a request that takes longer counts as failed and is retried'
            cand --max-retries 'How often to retry an API request that failed in a way that may pass (429, 5xx, reset, cut-off body, timeout), with exponential backoff'
            cand --calls-per-minute 'API calls per minute this tool allows itself (and 15× that per hour, at least 1,500). Microsoft allows 100/min and 1,500/h per app and tenant: raise it only if Microsoft raised your limits, or against the sandbox (the benchmark does)'
            cand -v 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)'
            cand --verbose 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)'
            cand -q 'Less logging on stderr: errors only'
            cand --quiet 'Less logging on stderr: errors only'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'defender-ingest;disable'= {
            cand -p 'Which connection (tenant + app registration) to use'
            cand --profile 'Which connection (tenant + app registration) to use'
            cand --state-dir 'Where the TOML state and lock files live [default: the platform''s state dir]'
            cand --ca-bundle 'Trust the CAs in this PEM bundle too (e.g. a TLS-inspecting proxy''s CA). `SSL_CERT_FILE` does the same'
            cand --proxy 'Send every request through this proxy, e.g. http://user:pass@proxy:3128 (overrides HTTPS_PROXY/HTTP_PROXY/NO_PROXY; "" turns proxies off). Without it the environment''s proxies are used, never for loopback hosts'
            cand --connect-timeout 'Seconds to wait for a connection (TCP, the proxy''s CONNECT, TLS)'
            cand --request-timeout 'Seconds one HTTP request may take, body included; a request that takes longer counts as failed and is retried'
            cand --max-retries 'How often to retry an API request that failed in a way that may pass (429, 5xx, reset, cut-off body, timeout), with exponential backoff'
            cand --calls-per-minute 'API calls per minute this tool allows itself (and 15× that per hour, at least 1,500). Microsoft allows 100/min and 1,500/h per app and tenant: raise it only if Microsoft raised your limits, or against the sandbox (the benchmark does)'
            cand -v 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)'
            cand --verbose 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)'
            cand -q 'Less logging on stderr: errors only'
            cand --quiet 'Less logging on stderr: errors only'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'defender-ingest;status'= {
            cand -p 'Which connection (tenant + app registration) to use'
            cand --profile 'Which connection (tenant + app registration) to use'
            cand --state-dir 'Where the TOML state and lock files live [default: the platform''s state dir]'
            cand --ca-bundle 'Trust the CAs in this PEM bundle too (e.g. a TLS-inspecting proxy''s CA). `SSL_CERT_FILE` does the same'
            cand --proxy 'Send every request through this proxy, e.g. http://user:pass@proxy:3128 (overrides HTTPS_PROXY/HTTP_PROXY/NO_PROXY; "" turns proxies off). Without it the environment''s proxies are used, never for loopback hosts'
            cand --connect-timeout 'Seconds to wait for a connection (TCP, the proxy''s CONNECT, TLS)'
            cand --request-timeout 'Seconds one HTTP request may take, body included; a request that takes longer counts as failed and is retried'
            cand --max-retries 'How often to retry an API request that failed in a way that may pass (429, 5xx, reset, cut-off body, timeout), with exponential backoff'
            cand --calls-per-minute 'API calls per minute this tool allows itself (and 15× that per hour, at least 1,500). Microsoft allows 100/min and 1,500/h per app and tenant: raise it only if Microsoft raised your limits, or against the sandbox (the benchmark does)'
            cand --json 'Print one JSON object on stdout'
            cand -v 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)'
            cand --verbose 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)'
            cand -q 'Less logging on stderr: errors only'
            cand --quiet 'Less logging on stderr: errors only'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'defender-ingest;pull'= {
            cand --output 'Append JSONL to PATH (''-'' is stdout)'
            cand --since 'First run only: how far back to start, a duration (7d, 12h) or an RFC 3339 time [default: 7d]'
            cand --lookback 'Re-read alerts updated this long before the cursor, for records that become visible late'
            cand --investigation-window 'Re-read investigations started within this window; they change without a timestamp'
            cand --deadline 'Stop starting new requests after this long (keep it under the cron interval); what was written is kept and the rest comes next pull'
            cand -p 'Which connection (tenant + app registration) to use'
            cand --profile 'Which connection (tenant + app registration) to use'
            cand --state-dir 'Where the TOML state and lock files live [default: the platform''s state dir]'
            cand --ca-bundle 'Trust the CAs in this PEM bundle too (e.g. a TLS-inspecting proxy''s CA). `SSL_CERT_FILE` does the same'
            cand --proxy 'Send every request through this proxy, e.g. http://user:pass@proxy:3128 (overrides HTTPS_PROXY/HTTP_PROXY/NO_PROXY; "" turns proxies off). Without it the environment''s proxies are used, never for loopback hosts'
            cand --connect-timeout 'Seconds to wait for a connection (TCP, the proxy''s CONNECT, TLS)'
            cand --request-timeout 'Seconds one HTTP request may take, body included; a request that takes longer counts as failed and is retried'
            cand --max-retries 'How often to retry an API request that failed in a way that may pass (429, 5xx, reset, cut-off body, timeout), with exponential backoff'
            cand --calls-per-minute 'API calls per minute this tool allows itself (and 15× that per hour, at least 1,500). Microsoft allows 100/min and 1,500/h per app and tenant: raise it only if Microsoft raised your limits, or against the sandbox (the benchmark does)'
            cand -v 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)'
            cand --verbose 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)'
            cand -q 'Less logging on stderr: errors only'
            cand --quiet 'Less logging on stderr: errors only'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'defender-ingest;logout'= {
            cand -p 'Which connection (tenant + app registration) to use'
            cand --profile 'Which connection (tenant + app registration) to use'
            cand --state-dir 'Where the TOML state and lock files live [default: the platform''s state dir]'
            cand --ca-bundle 'Trust the CAs in this PEM bundle too (e.g. a TLS-inspecting proxy''s CA). `SSL_CERT_FILE` does the same'
            cand --proxy 'Send every request through this proxy, e.g. http://user:pass@proxy:3128 (overrides HTTPS_PROXY/HTTP_PROXY/NO_PROXY; "" turns proxies off). Without it the environment''s proxies are used, never for loopback hosts'
            cand --connect-timeout 'Seconds to wait for a connection (TCP, the proxy''s CONNECT, TLS)'
            cand --request-timeout 'Seconds one HTTP request may take, body included; a request that takes longer counts as failed and is retried'
            cand --max-retries 'How often to retry an API request that failed in a way that may pass (429, 5xx, reset, cut-off body, timeout), with exponential backoff'
            cand --calls-per-minute 'API calls per minute this tool allows itself (and 15× that per hour, at least 1,500). Microsoft allows 100/min and 1,500/h per app and tenant: raise it only if Microsoft raised your limits, or against the sandbox (the benchmark does)'
            cand -v 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)'
            cand --verbose 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)'
            cand -q 'Less logging on stderr: errors only'
            cand --quiet 'Less logging on stderr: errors only'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'defender-ingest;sandbox'= {
            cand --port 'Port on 127.0.0.1 [default: any free port]'
            cand --alerts 'How many alerts the tenant starts with'
            cand --seed 'Seed for the synthetic data'
            cand --tls-ca-out 'Serve HTTPS with a freshly generated CA; its PEM is written to this path'
            cand -p 'Which connection (tenant + app registration) to use'
            cand --profile 'Which connection (tenant + app registration) to use'
            cand --state-dir 'Where the TOML state and lock files live [default: the platform''s state dir]'
            cand --ca-bundle 'Trust the CAs in this PEM bundle too (e.g. a TLS-inspecting proxy''s CA). `SSL_CERT_FILE` does the same'
            cand --proxy 'Send every request through this proxy, e.g. http://user:pass@proxy:3128 (overrides HTTPS_PROXY/HTTP_PROXY/NO_PROXY; "" turns proxies off). Without it the environment''s proxies are used, never for loopback hosts'
            cand --connect-timeout 'Seconds to wait for a connection (TCP, the proxy''s CONNECT, TLS)'
            cand --request-timeout 'Seconds one HTTP request may take, body included; a request that takes longer counts as failed and is retried'
            cand --max-retries 'How often to retry an API request that failed in a way that may pass (429, 5xx, reset, cut-off body, timeout), with exponential backoff'
            cand --calls-per-minute 'API calls per minute this tool allows itself (and 15× that per hour, at least 1,500). Microsoft allows 100/min and 1,500/h per app and tenant: raise it only if Microsoft raised your limits, or against the sandbox (the benchmark does)'
            cand --chunked 'Send API pages chunked as they are rendered, without a Content-Length (as a streaming OData service may), instead of each rendered whole first'
            cand -v 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)'
            cand --verbose 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)'
            cand -q 'Less logging on stderr: errors only'
            cand --quiet 'Less logging on stderr: errors only'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'defender-ingest;demo'= {
            cand --alerts 'How many alerts the sandbox tenant starts with'
            cand -p 'Which connection (tenant + app registration) to use'
            cand --profile 'Which connection (tenant + app registration) to use'
            cand --state-dir 'Where the TOML state and lock files live [default: the platform''s state dir]'
            cand --ca-bundle 'Trust the CAs in this PEM bundle too (e.g. a TLS-inspecting proxy''s CA). `SSL_CERT_FILE` does the same'
            cand --proxy 'Send every request through this proxy, e.g. http://user:pass@proxy:3128 (overrides HTTPS_PROXY/HTTP_PROXY/NO_PROXY; "" turns proxies off). Without it the environment''s proxies are used, never for loopback hosts'
            cand --connect-timeout 'Seconds to wait for a connection (TCP, the proxy''s CONNECT, TLS)'
            cand --request-timeout 'Seconds one HTTP request may take, body included; a request that takes longer counts as failed and is retried'
            cand --max-retries 'How often to retry an API request that failed in a way that may pass (429, 5xx, reset, cut-off body, timeout), with exponential backoff'
            cand --calls-per-minute 'API calls per minute this tool allows itself (and 15× that per hour, at least 1,500). Microsoft allows 100/min and 1,500/h per app and tenant: raise it only if Microsoft raised your limits, or against the sandbox (the benchmark does)'
            cand -v 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)'
            cand --verbose 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)'
            cand -q 'Less logging on stderr: errors only'
            cand --quiet 'Less logging on stderr: errors only'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'defender-ingest;generate'= {
            cand -p 'Which connection (tenant + app registration) to use'
            cand --profile 'Which connection (tenant + app registration) to use'
            cand --state-dir 'Where the TOML state and lock files live [default: the platform''s state dir]'
            cand --ca-bundle 'Trust the CAs in this PEM bundle too (e.g. a TLS-inspecting proxy''s CA). `SSL_CERT_FILE` does the same'
            cand --proxy 'Send every request through this proxy, e.g. http://user:pass@proxy:3128 (overrides HTTPS_PROXY/HTTP_PROXY/NO_PROXY; "" turns proxies off). Without it the environment''s proxies are used, never for loopback hosts'
            cand --connect-timeout 'Seconds to wait for a connection (TCP, the proxy''s CONNECT, TLS)'
            cand --request-timeout 'Seconds one HTTP request may take, body included; a request that takes longer counts as failed and is retried'
            cand --max-retries 'How often to retry an API request that failed in a way that may pass (429, 5xx, reset, cut-off body, timeout), with exponential backoff'
            cand --calls-per-minute 'API calls per minute this tool allows itself (and 15× that per hour, at least 1,500). Microsoft allows 100/min and 1,500/h per app and tenant: raise it only if Microsoft raised your limits, or against the sandbox (the benchmark does)'
            cand -v 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)'
            cand --verbose 'More logging on stderr (-v: info, -vv: debug, -vvv: trace)'
            cand -q 'Less logging on stderr: errors only'
            cand --quiet 'Less logging on stderr: errors only'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'defender-ingest;help'= {
            cand authorize 'Connect a profile to a Defender for Endpoint tenant and store its credentials in the OS keyring'
            cand test 'Check that the credentials work and each endpoint returns data that parses; moves no cursor'
            cand enable 'Switch ingestion on: `pull` fetches data for this profile from now on'
            cand disable 'Switch ingestion off; configuration, credentials and cursors are kept'
            cand status 'Show a profile: tenant, enabled, authorized, and each endpoint''s position. Never prints a secret'
            cand pull 'Fetch every record new or changed since the last pull and write it as one JSON line'
            cand logout 'Remove a profile''s credentials from the OS keyring (keeps configuration and cursors)'
            cand sandbox 'Serve the built-in sandbox tenant (a local Entra ID + Defender API) in the foreground'
            cand demo 'Run the whole journey against a throwaway sandbox: authorize, test, enable, pull to stdout'
            cand generate 'Write shell completions and the man page (used to refresh `completions/`)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'defender-ingest;help;authorize'= {
        }
        &'defender-ingest;help;test'= {
        }
        &'defender-ingest;help;enable'= {
        }
        &'defender-ingest;help;disable'= {
        }
        &'defender-ingest;help;status'= {
        }
        &'defender-ingest;help;pull'= {
        }
        &'defender-ingest;help;logout'= {
        }
        &'defender-ingest;help;sandbox'= {
        }
        &'defender-ingest;help;demo'= {
        }
        &'defender-ingest;help;generate'= {
        }
        &'defender-ingest;help;help'= {
        }
    ]
    $completions[$command]
}
