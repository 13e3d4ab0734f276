//! What a new tenant starts with: the router's after-create hook, run inside the
//! transaction that creates the tenant (whichever way: admin API, admin panel, `tenant
//! create`), in the new tenant's schema. By default it adds nothing; with
//! `HOTEL_SEED_DEMO=1` (or `seed_demo = true` in Rocket's configuration) every new tenant
//! starts with one demo hotel. If the seed fails, the tenant is not created.

use diesel::prelude::*;
use diesel_tenancy::TenantHooks;

use crate::model::{hotels, NewHotel};

/// The hotel a demo tenant starts with.
pub fn demo_hotel() -> NewHotel {
    NewHotel {
        name: "Demo Hotel".into(),
        location: "Paris".into(),
        description: "Seeded when the tenant was created (HOTEL_SEED_DEMO)".into(),
        picture: None,
    }
}

/// The hooks of every router the service builds.
pub fn hooks(seed_demo: bool) -> TenantHooks {
    TenantHooks::new().after_create(move |conn, tenant| {
        if seed_demo {
            diesel::insert_into(hotels::table)
                .values(&demo_hotel())
                .execute(conn)?;
            log::info!("seeded a demo hotel for tenant `{}`", tenant.name);
        }
        Ok(())
    })
}
