import React from 'react';

/** To be built. */
export function CatalogPage() {
  return <div>CatalogPage</div>;
}
