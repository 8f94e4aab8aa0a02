# Profit centres (SAP ProfitCenters); each belongs to one of five cost-accounting dimensions.
# Explores join it once per dimension (profit_center, profit_center_2, ...).
view: dim_profit_center {
  sql_table_name: sap_b1.dim_profit_center ;;

  dimension: pk { primary_key: yes hidden: yes sql: ${TABLE}.company || '-' || ${TABLE}.center_code ;; }
  dimension: company {
    label: "Company"
    description: "The SAP company the row was read from: its Airflow connection id (dim_company names its CompanyDB)."
    sql: ${TABLE}.company ;;
  }
  dimension: center_code { label: "Profit centre code" sql: ${TABLE}.center_code ;; }
  dimension: center_name { label: "Profit centre" sql: ${TABLE}.center_name ;; }
  dimension: dimension_code { label: "Dimension" type: number sql: ${TABLE}.dimension_code ;; }
  dimension: is_active { type: yesno sql: ${TABLE}.is_active ;; }
  dimension_group: effective_from { type: time timeframes: [date, month, year] datatype: date sql: ${TABLE}.effective_from ;; }
  # Deleted in SAP: the deletion check (Airflow task check_deletions) sets deleted_at; the row stays.
  dimension_group: deleted { type: time timeframes: [raw, time, date] sql: ${TABLE}.deleted_at ;; }
  dimension: is_deleted {
    label: "Deleted in SAP"
    description: "Yes once SAP no longer holds this profit centre; its explore hides these rows unless this filter is changed."
    type: yesno
    sql: ${TABLE}.deleted_at IS NOT NULL ;;
  }
  measure: count { type: count }
}
