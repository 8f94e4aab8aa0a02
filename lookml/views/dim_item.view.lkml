# Items (SAP Items).
view: dim_item {
  sql_table_name: sap_b1.dim_item ;;

  dimension: pk { primary_key: yes hidden: yes sql: ${TABLE}.company || '-' || ${TABLE}.item_code ;; }
  dimension: company {
    label: "Company"
    description: "The SAP company the row was read from: its Airflow connection id (dim_company names its CompanyDB)."
    sql: ${TABLE}.company ;;
  }
  dimension: item_code { sql: ${TABLE}.item_code ;; }
  dimension: item_name { sql: ${TABLE}.item_name ;; }
  dimension: items_group_code { type: number sql: ${TABLE}.items_group_code ;; }
  dimension: is_inventory_item { type: yesno sql: ${TABLE}.is_inventory_item ;; }
  dimension: is_sales_item { type: yesno sql: ${TABLE}.is_sales_item ;; }
  dimension: is_purchase_item { type: yesno sql: ${TABLE}.is_purchase_item ;; }
  dimension: inventory_uom { sql: ${TABLE}.inventory_uom ;; }
  # Deleted in SAP: the deletion check (Airflow task check_deletions) sets deleted_at; the row stays.
  dimension_group: deleted { type: time timeframes: [raw, time, date] sql: ${TABLE}.deleted_at ;; }
  dimension: is_deleted {
    label: "Deleted in SAP"
    description: "Yes once SAP no longer holds this item; its explore hides these rows unless this filter is changed."
    type: yesno
    sql: ${TABLE}.deleted_at IS NOT NULL ;;
  }
  measure: count { type: count }
}
