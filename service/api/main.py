from fastapi import APIRouter

from service.api.routes import comparisons, datasets, health, jobs

api_router = APIRouter()
api_router.include_router(health.router)
api_router.include_router(jobs.router)
api_router.include_router(datasets.router)
api_router.include_router(comparisons.router)
