"""The worker SDK on asyncio and Playwright's async API, with the sync SDK's names:

leases = ProfileLeases.open(store_url=None, worker_id="worker_03")
async with leases.checkout("profile_shop_17", run_id="run_0945", task_type="t") as lease:
    async with lease.browser(pw) as context:
        ...
        await lease.step("dashboard_loaded", safe=True)
"""

from workers.aio._leases import ProfileLeases, WorkerLease

__all__ = ["ProfileLeases", "WorkerLease"]
