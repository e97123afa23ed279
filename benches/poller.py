#!/usr/bin/env python3
"""The baseline for the pull benchmark: a plain Python poller, written the way
most SIEM add-ons are (urllib + json, one page in memory at a time).

It does the same job as `defender-ingest pull` on a first run: alerts with
evidence by keyset on lastUpdateTime (`ge`, `$orderby` asc, `$top` 10,000,
`$skip` over the records sharing the last page's last time), investigations
started in the window and all recommendations by `$skip`; each record is
written as one envelope line {"kind","tenant_id","fetched_at","data"}.

    DEFENDER_TOKEN=... poller.py --api-url URL --tenant-id ID --since-days 60 --output FILE
"""

import argparse
import datetime as dt
import json
import os
import urllib.parse
import urllib.request

TOP = 10_000


def norm(t):
    """An API datetime with 0, 2 or 7 fractional digits, as 7 digits (sortable, comparable)."""
    t = t.rstrip("Z")
    whole, _, frac = t.partition(".")
    return f"{whole}.{frac.ljust(7, '0')}Z"


def get(api, path, params, token):
    url = f"{api}{path}?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
    req = urllib.request.Request(
        url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())["value"]


def write(out, kind, tenant, records):
    fetched_at = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    for rec in records:
        line = {"kind": kind, "tenant_id": tenant, "fetched_at": fetched_at, "data": rec}
        out.write(json.dumps(line, separators=(",", ":"), ensure_ascii=False))
        out.write("\n")


def alerts(api, token, since, out, tenant):
    frm, skip = since, 0
    while True:
        params = {
            "$filter": f"lastUpdateTime ge {frm}",
            "$orderby": "lastUpdateTime asc",
            "$top": TOP,
            "$expand": "evidence",
        }
        if skip:
            params["$skip"] = skip
        page = get(api, "/api/alerts", params, token)
        write(out, "alert", tenant, page)
        if len(page) < TOP:
            return
        last = norm(page[-1]["lastUpdateTime"])
        ties = sum(1 for r in page if norm(r["lastUpdateTime"]) == last)
        if last == frm:
            skip += ties
        else:
            frm, skip = last, ties


def by_skip(api, token, path, kind, flt, out, tenant):
    skip = 0
    while True:
        params = {"$top": TOP}
        if flt:
            params["$filter"] = flt
        if skip:
            params["$skip"] = skip
        page = get(api, path, params, token)
        write(out, kind, tenant, page)
        if len(page) < TOP:
            return
        skip += len(page)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--api-url", required=True)
    p.add_argument("--tenant-id", required=True)
    p.add_argument("--since-days", type=int, default=7)
    p.add_argument("--output", required=True)
    a = p.parse_args()
    token = os.environ["DEFENDER_TOKEN"]
    now = dt.datetime.now(dt.timezone.utc)
    since = (now - dt.timedelta(days=a.since_days)).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")
    with open(a.output, "a", encoding="utf-8") as out:
        alerts(a.api_url, token, since, out, a.tenant_id)
        by_skip(a.api_url, token, "/api/investigations", "investigation",
                f"startTime ge {since}", out, a.tenant_id)
        by_skip(a.api_url, token, "/api/recommendations", "recommendation", None, out, a.tenant_id)
        out.flush()
        os.fsync(out.fileno())


if __name__ == "__main__":
    main()
